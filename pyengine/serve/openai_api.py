"""Parsing and checking OpenAI-style request bodies, and shaping responses and errors.

Bodies are checked field by field here (not by a schema library) so that every rejection names
its field in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import math
import time
import uuid


class ApiError(Exception):
    """An error answered in OpenAI's shape with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code=None, kind=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or {
            400: "invalid_request_error",
            404: "not_found_error",
            413: "invalid_request_error",
            503: "server_overloaded",
        }.get(status, "server_error")

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param)


_MISSING = object()


def field(body: dict, name: str, kinds, default=_MISSING):
    """body[name] if of one of `kinds` (bool is not an int here), else a 400 naming it."""
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise bad(f"'{name}' is required", name)
        return default
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool) and bool not in kinds:
        raise bad(f"'{name}' must be {_names(kinds)}, got a boolean", name)
    if not isinstance(value, kinds):
        raise bad(f"'{name}' must be {_names(kinds)}, got {type(value).__name__}", name)
    if isinstance(value, float) and not math.isfinite(value):
        raise bad(f"'{name}' must be a finite number", name)
    return value


def _names(kinds) -> str:
    words = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "a boolean",
        list: "an array",
        dict: "an object",
    }
    return " or ".join(words.get(k, k.__name__) for k in kinds)


def number_in(body, name, lo, hi, default, integer=False):
    value = field(body, name, (int,) if integer else (int, float), default)
    if value is not None and not lo <= value <= hi:
        raise bad(f"'{name}' must be in [{lo}, {hi}], got {value}", name)
    return value


def stop_strings(body) -> list[str]:
    stop = field(body, "stop", (str, list), [])
    stop = [stop] if isinstance(stop, str) else stop
    if len(stop) > 16:
        raise bad(f"'stop' takes at most 16 strings, got {len(stop)}", "stop")
    for s in stop:
        if not isinstance(s, str) or not s:
            raise bad("'stop' must be a non-empty string or a list of them", "stop")
    return stop


def sampling_fields(body: dict, default_max_tokens: int) -> dict:
    """The sampling parameters both completion routes share, checked."""
    max_tokens = field(body, "max_completion_tokens", int, None)
    if max_tokens is None:
        max_tokens = field(body, "max_tokens", int, default_max_tokens)
    if max_tokens < 1:
        raise bad(f"'max_tokens' must be >= 1, got {max_tokens}", "max_tokens")
    top_k = field(body, "top_k", int, None)
    if top_k is not None and top_k < 0:
        raise bad(f"'top_k' must be >= 0, got {top_k}", "top_k")
    presence = number_in(body, "presence_penalty", -2.0, 2.0, 0.0)
    frequency = number_in(body, "frequency_penalty", -2.0, 2.0, 0.0)
    if presence or frequency:
        raise bad(
            "presence_penalty and frequency_penalty are not supported (use repetition_penalty)",
            "presence_penalty" if presence else "frequency_penalty",
        )
    rep = field(body, "repetition_penalty", (int, float), None)
    if rep is not None and not rep > 0:
        raise bad(f"'repetition_penalty' must be > 0, got {rep}", "repetition_penalty")
    return {
        "max_tokens": max_tokens,
        "temperature": number_in(body, "temperature", 0.0, 2.0, 1.0),
        "top_p": number_in(body, "top_p", 1e-9, 1.0, None),
        "top_k": top_k or None,  # 0: no top-k filter (as vLLM's -1)
        "seed": field(body, "seed", int, None),
        "stop": stop_strings(body),
        "repetition_penalty": rep,
        # vLLM's extension: run to max_tokens past EOS (benchmarks, tests of long answers)
        "ignore_eos": field(body, "ignore_eos", bool, False),
    }


def choice_count(body) -> int:
    return number_in(body, "n", 1, 16, 1, integer=True)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int, cached: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
