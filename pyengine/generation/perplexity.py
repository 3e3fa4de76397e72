"""Perplexity of a causal LM on a text: exp of the mean negative log-likelihood of its tokens.

The text is tokenized once, exactly as model.tokenizer.encode(text) does by default: a
tokenizer whose post-processor adds BOS (a GGUF with add_bos_token, a Llama-2 tokenizer.json)
puts it once, before the first token; SmolLM2's adds nothing. No BOS is inserted per window.

The ids are cut into windows of `window` tokens starting every `stride` tokens (by default
stride = window: windows side by side). Within a window the logits at position t score token
t + 1, and a token is scored at most once, in the first window that can score it:
- side by side (stride = window), every token except the first of each window is scored (the
  first has no context in its window): n tokens in w windows score n - w;
- overlapping (stride < window), each window scores only the tokens past the previous window's
  end, its overlap being their context: every token after the very first is scored (n - 1).
The last window may be shorter; a last window of a single token (nothing to score) is dropped.

llama.cpp's `llama-perplexity` tool differs (it puts BOS at the start of every chunk and scores
only each chunk's second half), so its printed numbers are not comparable with these; to compare
engines, score the other engine's logits on the same windows with score_windows().

Log-softmax is computed in float64 (max subtracted first), whatever the logits' dtype.
"""

from __future__ import annotations

import math
import os
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

DEFAULT_MAX_WINDOW = 512
_ROWS_PER_CHUNK = 256  # bounds the float64 copy: [256, vocab] * 8 bytes at a time


@dataclass(frozen=True)
class PerplexityResult:
    ppl: float  # exp(nll)
    nll: float  # mean negative log-likelihood per scored token, in nats
    tokens_scored: int
    windows: int  # windows evaluated
    window: int  # tokens per window (the last one may hold fewer)
    stride: int  # tokens between window starts (== window: no overlap)
    seconds: float  # wall time of the forward passes and the scoring


class TokenWindow(NamedTuple):
    begin: int  # index of ids[0] in the whole text's ids
    ids: np.ndarray  # [n] int32, the window's tokens
    score_from: int  # tokens ids[score_from:] are scored, each from the logits one row before


def default_text_path() -> str:
    """CPython's own LICENSE.txt (about 14 kB of English, 3.8k SmolLM2 tokens): a text every
    install of this Python has, so `pyengine perplexity` runs without --text. Its content
    differs a little between Python versions: compare numbers from the same Python."""
    path = os.path.join(sysconfig.get_paths()["stdlib"], "LICENSE.txt")
    if not os.path.isfile(path):  # some distributions move it to /usr/share/doc
        raise FileNotFoundError(
            f"this Python has no {path} (the default perplexity text): pass a text file"
        )
    return path


def token_windows(ids, window: int, stride: int | None = None) -> list[TokenWindow]:
    """The windows that score every token of `ids` after the first exactly once (see the module
    docstring). ids: 1-D token ids; 2 <= window; 1 <= stride <= window (default: window)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be 1-D integer token ids, got {ids.dtype} {ids.shape}")
    stride = window if stride is None else stride
    if int(window) != window or window < 2:
        raise ValueError(f"window must be an integer >= 2 (a token and its context), got {window}")
    if int(stride) != stride or not 1 <= stride <= window:
        raise ValueError(f"stride must be an integer in [1, window={window}], got {stride}")
    window, stride = int(window), int(stride)
    ids = ids.astype(np.int32)
    n = len(ids)
    out = []
    seen = 0  # ids[:seen] were in an earlier window (scored there, or its context-only first)
    for begin in range(0, n - 1, stride):
        end = min(begin + window, n)
        score_from = max(seen - begin, 1)
        if end - begin > score_from:  # a lone trailing token (no context) is not a window
            out.append(TokenWindow(begin, ids[begin:end], score_from))
        seen = end
        if end == n:
            break
    return out


def token_nll(logits, ids, score_from: int = 1) -> np.ndarray:
    """Negative log-likelihood (nats, float64) of ids[score_from:], each token t scored by the
    logits row t - 1: -log_softmax(logits[t - 1])[ids[t]].

    logits: [n, vocab], one row per token of ids (the last row is not used), any float dtype;
    ids: [n] integer token ids; 1 <= score_from <= n. Returns [n - score_from] float64.
    """
    logits = np.asarray(logits)
    ids = np.asarray(ids)
    n = len(ids)
    if logits.ndim != 2 or logits.shape[0] != n:
        raise ValueError(f"logits must be [len(ids)={n}, vocab], got {logits.shape}")
    if not 1 <= score_from <= n:
        raise ValueError(f"score_from must be in [1, {n}], got {score_from}")
    targets = ids[score_from:].astype(np.int64)
    vocab = logits.shape[1]
    if targets.size and (targets.min() < 0 or targets.max() >= vocab):
        raise ValueError(f"ids hold a token outside the logits' vocabulary [0, {vocab})")
    out = np.empty(len(targets), np.float64)
    for lo in range(0, len(targets), _ROWS_PER_CHUNK):
        hi = min(lo + _ROWS_PER_CHUNK, len(targets))
        rows = logits[score_from - 1 + lo : score_from - 1 + hi].astype(np.float64)  # [r, V]
        rows -= rows.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(rows).sum(axis=1))  # [r]
        out[lo:hi] = log_z - rows[np.arange(hi - lo), targets[lo:hi]]
    return out


def perplexity_of_logits(logits, ids, score_from: int = 1) -> float:
    """exp(mean token_nll(logits, ids, score_from)): the perplexity of one window's logits."""
    return math.exp(float(token_nll(logits, ids, score_from).mean()))


def score_windows(
    logits_of: Callable[[np.ndarray], np.ndarray],
    ids,
    window: int,
    stride: int | None = None,
) -> PerplexityResult:
    """Perplexity of `ids` given any engine's logits: logits_of(window_ids [n] int32) returns
    [n, vocab] logits for a fresh sequence of those tokens (no state from earlier windows).
    perplexity() runs this with pyengine's forward; a test and bench/perplexity.py run it with
    llama.cpp's, so both engines are scored on the same windows by the same code."""
    windows = token_windows(ids, window, stride)
    if not windows:
        raise ValueError(f"perplexity needs at least 2 tokens, got {len(np.asarray(ids))}")
    start = time.perf_counter()
    total, count = 0.0, 0
    for w in windows:
        nll = token_nll(logits_of(w.ids), w.ids, w.score_from)
        total += float(nll.sum())
        count += len(nll)
    seconds = time.perf_counter() - start
    mean = total / count
    return PerplexityResult(
        ppl=math.exp(mean),
        nll=mean,
        tokens_scored=count,
        windows=len(windows),
        window=int(window),
        stride=int(window if stride is None else stride),
        seconds=seconds,
    )


def perplexity(
    model, text: str, *, window: int | None = None, stride: int | None = None
) -> PerplexityResult:
    """Perplexity of a decoder model (pyengine.load of a causal LM) on `text`.

    window: tokens per forward pass, 2 <= window <= model.context_length (default: the context
        length, at most 512). stride: tokens between window starts, 1 <= stride <= window
        (default: window, no overlap; smaller: more context per scored token, more compute).
    Returns a PerplexityResult; see the module docstring for what is scored.
    """
    if getattr(getattr(model, "config", None), "is_encoder", False) or not hasattr(
        model, "context_length"
    ):
        raise TypeError(
            f"perplexity needs a causal LM (a decoder), got {type(model).__name__}; "
            "an encoder predicts no next token"
        )
    if getattr(model, "tokenizer", None) is None:
        raise TypeError(
            f"this {type(model).__name__} has no tokenizer (its checkpoint has no "
            "tokenizer.json and is not a GGUF file): perplexity needs one to read the text"
        )
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty")
    context = int(model.context_length)
    if window is None:
        window = min(context, DEFAULT_MAX_WINDOW)
    elif window > context:
        raise ValueError(f"window {window} exceeds the model's context length {context}")
    ids = np.asarray(model.tokenizer.encode(text).ids, np.int32)
    if len(ids) < 2:
        raise ValueError(
            f"text has {len(ids)} token(s); perplexity needs at least 2 (a token and its context)"
        )
    return score_windows(lambda w: model.forward(w[None, :])[0], ids, window, stride)
