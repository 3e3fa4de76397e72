"""Typed reads of a checkpoint's settings: config.json keys or GGUF metadata entries.

Both formats are untrusted input: a key may be missing, or hold a string where a count belongs,
a NaN where an epsilon belongs, an integer where the tokenizer expects a list of strings. Every
read goes through one of these methods, which return the Python type the caller needs or raise
CheckpointError naming the file and the key, so a malformed file never surfaces as a bare
TypeError deep in a model builder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import CheckpointError, UnsupportedModelError

_MISSING = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TypedKeys:
    """values: the parsed settings (a config.json object, or GGUF key -> value); source: the
    file, named in every error. A key whose value is None (JSON null) counts as missing."""

    def __init__(self, values: Mapping[str, Any], source: str):
        self.values = values
        self.source = source

    def _fail(self, key: str, what: str, value: Any) -> CheckpointError:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return CheckpointError(f"{self.source}: {key!r} must be {what}, not {shown}")

    def _value(self, key: str, default: Any) -> Any:
        value = self.values.get(key)
        if value is None:
            if default is _MISSING:
                raise CheckpointError(f"{self.source}: required key {key!r} is missing")
            return default
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """The value as stored, unchecked (for callers that dispatch on its type)."""
        value = self.values.get(key)
        return default if value is None else value

    def integer(self, key: str, default: Any = _MISSING, minimum: int = 0) -> int:
        value = self._value(key, default)
        if not _is_int(value) or value < minimum:
            kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
            raise self._fail(key, kind, value)
        return value

    def positive(self, key: str, default: Any = _MISSING) -> int:
        return self.integer(key, default, minimum=1)

    def optional_int(self, key: str) -> int | None:
        return None if self.values.get(key) is None else self.integer(key)

    def number(self, key: str, default: Any = _MISSING, positive: bool = False) -> float:
        """A finite float (NaN and infinities are refused: they would poison every output)."""
        value = self._value(key, default)
        if not _is_number(value) or not math.isfinite(value) or (positive and value <= 0):
            raise self._fail(key, "a positive number" if positive else "a finite number", value)
        return float(value)

    def flag(self, key: str, default: Any = _MISSING) -> bool | None:
        """True or false; `default` (which may be None) when the key is absent."""
        value = self._value(key, default)
        if value is not None and not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def string(self, key: str, default: Any = _MISSING) -> str | None:
        value = self._value(key, default)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def ids(self, key: str) -> tuple[int, ...]:
        """An int or a list of ints (config.json's eos_token_id may be either); () if absent."""
        value = self.values.get(key)
        if value is None:
            return ()
        values = value if isinstance(value, list) else [value]
        if not all(_is_int(v) and v >= 0 for v in values):
            raise self._fail(key, "an id or a list of ids", value)
        return tuple(values)

    def strings(self, key: str) -> list[str] | None:
        return self._list(key, lambda v: isinstance(v, str), "a string")

    def integers(self, key: str) -> list[int] | None:
        return self._list(key, _is_int, "an int")

    def numbers(self, key: str) -> list[float] | None:
        items = self._list(key, _is_number, "a number")
        if items is not None and not all(math.isfinite(v) for v in items):
            raise CheckpointError(f"{self.source}: {key!r} holds a NaN or an infinity")
        return None if items is None else [float(v) for v in items]

    def _list(self, key: str, ok, item: str) -> list | None:
        """The list at `key` (None if absent) after checking every item is `item`."""
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._fail(key, "a list", value)
        for index, entry in enumerate(value):
            if not ok(entry):
                raise self._fail(f"{key}[{index}]", item, entry)
        return value

    def reject(self, key: str, bad: Any, why: str) -> None:
        if key in self.values and self.values[key] == bad:
            raise UnsupportedModelError(f"{self.source}: unsupported option {key}={bad!r}: {why}")
