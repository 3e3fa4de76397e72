"""model.generate(): prompts in, new tokens out, greedy or sampled, whole or streamed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing

import numpy as np

from pyengine.generation.chat import render_chat


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

    prompt: a string, a list of strings (a batch of any lengths), or token ids (a 1-D
        sequence, or a list of 1-D sequences for a batch).
    chat=True wraps a string prompt as one user message; messages=[{"role", "content"}, ...]
        is rendered with the model's chat template instead of `prompt`.
    temperature=0 is greedy (deterministic); otherwise top_k / top_p filter and `seed` makes
        the draw reproducible (row b > 0 of a batch draws from the seed [seed, b]).
        repetition_penalty > 1 discourages ids already present.
    stop: string(s) that end generation; the text returned stops before them.
    stream=True (single text prompt): returns an iterator of text pieces as they are decoded.

    A batch runs on the serving engine (pyengine.serve.engine): prompts are prefilled together
    and each row leaves the batch as soon as it ends. Returns text for text prompts (a list for
    a batch), numpy int32 ids for id prompts (a list for a batch). Generation of a row also ends
    at the model's end-of-sequence token(s).
    """
    from pyengine.serve.engine import SamplingParams

    if int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens}")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    params = SamplingParams(
        max_tokens=int(max_new_tokens),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
        stop=stops,
    )
    params.check()
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
    if stream and (not single or not text_mode):
        raise ValueError("stream=True takes a single text prompt")
    # The model's engine is shared by its calls: the lock is held while the steps run (a
    # stream holds it from its first piece until it ends or is closed).
    steps = model.lock.hold_while(_engine_steps(model, prompts, params))
    if stream:
        return _stream_text(steps)
    requests = None
    for step in steps:  # runs the engine until every row has ended
        requests = step[0]
    if text_mode:
        out = [r.text.text for r in requests]
    else:
        out = [np.array(r.output, np.int32) for r in requests]
    return out[0] if single else out


def _engine_steps(model, prompts, params) -> Iterator:
    """Runs the prompts on the model's engine; yields (requests, events) after each step."""
    engine = model.generation_engine(len(prompts), sum(len(p) for p in prompts), params.max_tokens)
    requests = [engine.submit(p, params, index=b) for b, p in enumerate(prompts)]
    # Timings of the native work, for the CLI and benchmarks: model.last_generation.
    stats = {
        "prompt_tokens": int(sum(len(p) for p in prompts)),
        "prefill_seconds": 0.0,
        "decode_steps": 0,
        "decode_seconds": 0.0,
    }
    model.last_generation = stats
    try:
        while not engine.idle:
            prefilling = any(not r.output and r.finish_reason is None for r in requests)
            t0 = time.perf_counter()
            events = engine.step()
            dt = time.perf_counter() - t0
            if prefilling:
                stats["prefill_seconds"] += dt
            else:
                stats["decode_seconds"] += dt
                stats["decode_steps"] += 1
            yield requests, events
    finally:  # closed early (a stream dropped): end the rest and free their blocks
        for r in requests:
            if r.finish_reason is None:
                engine.cancel(r)
        engine.run_until_idle()


# ---- prompts ---------------------------------------------------------------------------------


def _encode(model, prompt, messages, chat) -> tuple[list[np.ndarray], bool, bool]:
    """(token ids per prompt, prompts were text, a single prompt)."""
    if messages is not None:
        if prompt is not None:
            raise ValueError("pass either prompt or messages, not both")
        return [encode_chat(model, messages)], True, True
    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("prompt is empty")
        if chat:
            return [encode_chat(model, [{"role": "user", "content": prompt}])], True, True
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
    return _checked(model, np.array(model.tokenizer.encode(text).ids, np.int32), text)


def _checked(model, ids: np.ndarray, text: str) -> np.ndarray:
    """A text's ids, refused clearly when the tokenizer gives none or ids past the model's
    vocabulary (a tokenizer.json that does not belong to the weights)."""
    if ids.size == 0:  # a tokenizer may drop every character it has no token for
        raise ValueError(
            f"the prompt {text!r:.60} encodes to no tokens with this model's tokenizer"
        )
    return model.check_ids(ids, "the encoded prompt")


def encode_chat(model, messages) -> np.ndarray:
    """Token ids of messages rendered with the model's chat template (and a generation prompt)."""
    if model.tokenizer is None:
        raise ValueError("this model has no tokenizer: pass token ids")
    text = render_chat(model.extras.get("chat_template"), messages, _special_tokens(model))
    # The template writes the special tokens itself.
    ids = np.array(model.tokenizer.encode(text, add_special_tokens=False).ids, np.int32)
    return _checked(model, ids, text)


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


def eos_ids(model) -> set[int]:
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


# ---- streaming ---------------------------------------------------------------------------------


def _stream_text(steps) -> Iterator[str]:
    """The text pieces of the one request as its tokens arrive (see TextStream)."""
    with closing(steps):  # the model is released as soon as this stream ends, however it ends
        for _, events in steps:
            for e in events:
                if e.text:
                    yield e.text
