"""Sentence-transformers' pooling of token embeddings into one vector per text, in numpy.

hidden [B, S, H] float32, mask [B, S] (1 = real token). Modes concatenate in
sentence-transformers' order: cls, max, mean, mean_sqrt_len.
"""

from __future__ import annotations

import numpy as np

MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")


def pool(hidden: np.ndarray, mask: np.ndarray, modes) -> np.ndarray:
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"pooling mode(s) {unknown} are not supported (supported: {MODES})")
    m = mask.astype(np.float32)[:, :, None]
    out = []
    if "cls_token" in modes:
        out.append(hidden[:, 0])
    if "max_tokens" in modes:
        out.append(np.where(m > 0, hidden, -1e9).max(axis=1))
    if "mean_tokens" in modes or "mean_sqrt_len_tokens" in modes:
        summed = (hidden * m).sum(axis=1)
        counts = np.maximum(m.sum(axis=1), 1e-9)
        if "mean_tokens" in modes:
            out.append(summed / counts)
        if "mean_sqrt_len_tokens" in modes:
            out.append(summed / np.sqrt(counts))
    return np.concatenate(out, axis=1).astype(np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x.astype(np.float64), axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
