"""model.generate(): prompts in, new tokens out, greedy or sampled, whole or streamed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing

import numpy as np

from pyengine.generation.chat import render_chat
from pyengine.generation.sampling import Sampler


def generate(
    model,
    prompt=None,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    stream: bool = False,
    chat: bool = False,
    messages: list[dict] | None = None,
):
    """Generates up to max_new_tokens after each prompt and returns only what was generated.

    prompt: a string, a list of strings (a batch of any lengths: left-padded and masked), or
        token ids (a 1-D sequence, or a list of 1-D sequences for a batch).
    chat=True wraps a string prompt as one user message; messages=[{"role", "content"}, ...]
        is rendered with the model's chat template instead of `prompt`.
    temperature=0 is greedy (deterministic); otherwise top_k / top_p filter and `seed` makes
        the draw reproducible. repetition_penalty > 1 discourages ids already present.
    stop: string(s) that end generation; the text returned stops before them.
    stream=True (single text prompt): returns an iterator of text pieces as they are decoded.

    Returns text for text prompts (a list for a batch), numpy int32 ids for id prompts (a list
    for a batch). Generation of a row also ends at the model's end-of-sequence token(s).
    """
    if int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens}")
    sampler = Sampler(temperature, top_k, top_p, repetition_penalty, seed)
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise ValueError("stop must be a non-empty string or a list of them")
    prompts, text_mode, single = _encode(model, prompt, messages, chat)
    longest = max(len(p) for p in prompts)
    needed = longest + max_new_tokens
    if needed > model.context_length:
        raise ValueError(
            f"prompt ({longest} tokens) + max_new_tokens ({max_new_tokens}) = "
            f"{needed} exceeds the model's context length {model.context_length}"
        )
    if (stops or stream) and not text_mode and model.tokenizer is None:
        raise ValueError("stop strings and streaming need the model's tokenizer")
    # The model's buffers are shared: the lock is held while the steps run (a stream holds it
    # from its first piece until it ends or is closed).
    steps = model.lock.hold_while(
        _decode_loop(model, prompts, max_new_tokens, sampler, _eos_ids(model))
    )
    if stream:
        if not single or not text_mode:
            raise ValueError("stream=True takes a single text prompt")
        return _stream_text(model.tokenizer, steps, stops)
    generated = [[] for _ in prompts]
    finished_text = [None] * len(prompts)
    for tokens, alive in steps:
        for b, t in enumerate(tokens):
            if alive[b] and finished_text[b] is None:
                generated[b].append(int(t))
                if stops:
                    text = _decode(model.tokenizer, generated[b])
                    cut = _stop_index(text, stops)
                    if cut is not None:
                        finished_text[b] = text[:cut]
        if stops and all(f is not None for f in finished_text):
            steps.close()
            break
    if text_mode:
        out = [
            f if f is not None else _decode(model.tokenizer, g)
            for f, g in zip(finished_text, generated)
        ]
    else:
        out = [np.array(g, np.int32) for g in generated]
    return out[0] if single else out


# ---- prompts ---------------------------------------------------------------------------------


def _encode(model, prompt, messages, chat) -> tuple[list[np.ndarray], bool, bool]:
    """(token ids per prompt, prompts were text, a single prompt)."""
    if messages is not None:
        if prompt is not None:
            raise ValueError("pass either prompt or messages, not both")
        return [_encode_chat(model, messages)], True, True
    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("prompt is empty")
        if chat:
            return [_encode_chat(model, [{"role": "user", "content": prompt}])], True, True
        return [_encode_text(model, prompt)], True, True
    if chat:
        raise ValueError("chat=True takes a single string prompt (or use messages=)")
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        for i, p in enumerate(prompt):
            if not p:
                raise ValueError(f"prompt[{i}] is empty")
        return [_encode_text(model, p) for p in prompt], True, False
    if prompt is None:
        raise ValueError("prompt is required (a string, a list of strings, or token ids)")
    if (
        isinstance(prompt, (list, tuple))
        and prompt
        and all(isinstance(p, (list, tuple, np.ndarray)) for p in prompt)
    ):
        batch = [model.check_ids(np.asarray(p), f"prompt[{i}]") for i, p in enumerate(prompt)]
        single = False
    else:
        arr = np.asarray(prompt)
        if arr.dtype == object or arr.dtype.kind in "US":
            raise TypeError("prompt must be a string, a list of strings, or integer token ids")
        arr = model.check_ids(arr, "prompt")
        if arr.ndim == 2:
            batch, single = list(arr), False
        elif arr.ndim == 1:
            batch, single = [arr], True
        else:
            raise ValueError(f"token id prompt must be 1-D or 2-D, got shape {arr.shape}")
    for i, p in enumerate(batch):
        if p.ndim != 1 or p.size == 0:
            raise ValueError(
                f"prompt {i} is empty"
                if p.size == 0
                else f"prompt {i} must be a 1-D sequence of ids"
            )
    return batch, False, single


def _encode_text(model, text: str) -> np.ndarray:
    if model.tokenizer is None:
        raise ValueError("this model has no tokenizer: pass token ids")
    return np.array(model.tokenizer.encode(text).ids, np.int32)


def _encode_chat(model, messages) -> np.ndarray:
    if model.tokenizer is None:
        raise ValueError("this model has no tokenizer: pass token ids")
    text = render_chat(model.extras.get("chat_template"), messages, _special_tokens(model))
    # The template writes the special tokens itself.
    return np.array(model.tokenizer.encode(text, add_special_tokens=False).ids, np.int32)


def _special_tokens(model) -> dict:
    special = dict(model.extras.get("special_tokens") or {})
    tc = model.extras.get("tokenizer_config") or {}
    for key in ("bos", "eos"):
        value = tc.get(f"{key}_token")
        if isinstance(value, dict):
            value = value.get("content")
        if value and not special.get(key):
            special[key] = value
    return special


def _eos_ids(model) -> set[int]:
    ids = set(model.config.eos_token_ids)
    gen = model.extras.get("generation_config") or {}
    eos = gen.get("eos_token_id")
    if eos is not None:
        ids.update(eos if isinstance(eos, list) else [eos])
    token = _special_tokens(model).get("eos")
    if token and model.tokenizer is not None:
        tid = model.tokenizer.token_to_id(token)
        if tid is not None:
            ids.add(tid)
    return ids


# ---- the decode loop -------------------------------------------------------------------------


def _decode_loop(model, prompts, max_new_tokens, sampler, eos) -> Iterator:
    """Yields (tokens [B], alive [B]) per step: the new token of each row, and whether the row
    was still generating when it was chosen (a row ends after emitting an EOS id)."""
    longest = max(len(p) for p in prompts)
    pads = np.array([longest - len(p) for p in prompts], np.int32)
    ids = np.zeros((len(prompts), longest), np.int32)
    for b, p in enumerate(prompts):
        ids[b, pads[b] :] = p
    seen = [np.asarray(p, np.int64) for p in prompts]
    alive = np.ones(len(prompts), bool)
    # Timings of the native work, for the CLI and benchmarks: model.last_generation.
    stats = {
        "prompt_tokens": int(sum(len(p) for p in prompts)),
        "prefill_seconds": 0.0,
        "decode_steps": 0,
        "decode_seconds": 0.0,
    }
    model.last_generation = stats
    t0 = time.perf_counter()
    logits = model.start(ids, pads, longest + max_new_tokens, "last")
    stats["prefill_seconds"] = time.perf_counter() - t0
    for step in range(max_new_tokens):
        tokens = sampler(logits, seen)
        yield tokens, alive.copy()
        if sampler.repetition_penalty is not None:
            seen = [np.append(s, t) for s, t in zip(seen, tokens)]
        alive &= ~np.isin(tokens, list(eos))
        if not alive.any() or step + 1 == max_new_tokens:
            return
        t0 = time.perf_counter()
        logits = model.step(tokens, pads, longest + step)
        stats["decode_seconds"] += time.perf_counter() - t0
        stats["decode_steps"] += 1


def _decode(tokenizer, ids) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def _stop_index(text: str, stops: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _stream_text(tokenizer, steps, stops) -> Iterator[str]:
    """Text pieces as tokens arrive. A piece is held back while it ends in an incomplete UTF-8
    character (U+FFFD) or could still be the start of a stop string."""
    ids: list[int] = []
    emitted = 0
    hold = max((len(s) for s in stops), default=1) - 1
    text = ""
    with closing(steps):  # the model is released as soon as this stream ends, however it ends
        for tokens, alive in steps:
            if not alive[0]:
                break
            ids.append(int(tokens[0]))
            text = _decode(tokenizer, ids)
            cut = _stop_index(text, stops) if stops else None
            if cut is not None:
                if cut > emitted:
                    yield text[emitted:cut]
                return
            ready = len(text) - hold
            if text.endswith("\ufffd"):
                ready = min(ready, len(text) - 1)
            if ready > emitted:
                yield text[emitted:ready]
                emitted = ready
    if len(text) > emitted:  # generation ended: what was held back is final now
        yield text[emitted:]
