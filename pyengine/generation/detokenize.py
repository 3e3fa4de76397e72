"""Turning a sequence's new token ids into text as they arrive: stop strings, and pieces that
never split a UTF-8 character or show the beginning of a stop string too early."""

from __future__ import annotations


class TextStream:
    """Feed ids one at a time; each feed returns the text that is final so far (maybe "").

    Decoding is incremental: only the last few ids are decoded per token (a window that starts
    one text piece back, so a tokenizer that treats the first token of a decode specially treats
    both decodes alike), not the whole sequence, so a token costs the same at position 10 and
    10,000. New text is taken only once it does not end in an incomplete UTF-8 character
    (U+FFFD); a piece is also held back while it could be the start of a stop string. When a
    stop string appears, `stopped` becomes True and the text ends before it.
    """

    def __init__(self, tokenizer, stops: list[str]):
        self.tokenizer = tokenizer
        self.stops = stops
        self.ids: list[int] = []
        self.text = ""  # everything decoded so far (up to the stop string once stopped)
        self.emitted = 0  # characters of text already returned
        self.stopped = False
        self._hold = max((len(s) for s in stops), default=1) - 1
        self._prefix = 0  # ids[_prefix:_read]: the window already in text, redecoded for context
        self._read = 0

    def feed(self, token: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(int(token))
        self._advance(final=False)
        return self._take(len(self.text) - self._hold)

    def flush(self) -> str:
        """What was held back, once generation has ended."""
        if not self.stopped:
            self._advance(final=True)
        return self._take(len(self.text))

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _advance(self, final: bool) -> None:
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return  # nothing new yet, or a character still incomplete
        start = len(self.text)
        self.text += after[len(before) :]
        self._prefix, self._read = self._read, len(self.ids)
        cut = stop_index(self.text, self.stops, max(0, start - self._hold))
        if cut is not None:
            self.stopped = True
            self.text = self.text[:cut]
            self._hold = 0

    def _take(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        piece = self.text[self.emitted : upto]
        self.emitted = upto
        return piece


def stop_index(text: str, stops: list[str], start: int = 0) -> int | None:
    """Where the first stop string begins in text[start:] (as an index into text), or None."""
    hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(hits) if hits else None
