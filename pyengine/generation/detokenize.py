"""Turning a sequence's new token ids into text as they arrive: stop strings, and pieces that
never split a UTF-8 character or show the beginning of a stop string too early."""

from __future__ import annotations


class TextStream:
    """Feed ids one at a time; each feed returns the text that is final so far (maybe "").

    A piece is held back while the text ends in an incomplete UTF-8 character (U+FFFD) or could
    still be the start of a stop string. When a stop string appears, `stopped` becomes True and
    the text ends before it.
    """

    def __init__(self, tokenizer, stops: list[str]):
        self.tokenizer = tokenizer
        self.stops = stops
        self.ids: list[int] = []
        self.text = ""  # everything decoded so far (up to the stop string once stopped)
        self.emitted = 0  # characters of text already returned
        self.stopped = False
        self._hold = max((len(s) for s in stops), default=1) - 1

    def feed(self, token: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(int(token))
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = stop_index(self.text, self.stops)
        if cut is not None:
            self.stopped = True
            self.text = self.text[:cut]
            return self._take(len(self.text))
        ready = len(self.text) - self._hold
        if self.text.endswith("\ufffd"):
            ready = min(ready, len(self.text) - 1)
        return self._take(ready)

    def flush(self) -> str:
        """What was held back, once generation has ended."""
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        piece = self.text[self.emitted : upto]
        self.emitted = upto
        return piece


def stop_index(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None
