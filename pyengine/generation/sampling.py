"""Choosing the next token from logits, the way Hugging Face's generate() does: repetition
penalty, then temperature, top-k and top-p (nucleus) filtering, then a draw. Temperature 0 is
greedy (argmax, deterministic); a seed makes sampling reproducible."""

from __future__ import annotations

import numpy as np


class Sampler:
    def __init__(
        self,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
    ):
        if temperature is None or not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and (int(top_k) != top_k or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
        if repetition_penalty is not None and not repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")
        self.temperature = float(temperature)
        self.top_k = top_k
        self.top_p = top_p
        self.repetition_penalty = repetition_penalty
        self.rng = np.random.default_rng(seed)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def __call__(self, logits: np.ndarray, seen: list[np.ndarray]) -> np.ndarray:
        """logits [B, V]; seen[b]: ids so far (prompt + generated) of row b. Returns ids [B]."""
        return np.array([self.sample_row(row, seen[b]) for b, row in enumerate(logits)], np.int32)

    def sample_row(self, logits: np.ndarray, seen: np.ndarray) -> int:
        """The next id after one sequence: logits [V], seen its ids so far."""
        x = logits.astype(np.float64)
        if self.repetition_penalty is not None and self.repetition_penalty != 1.0:
            ids = np.unique(seen)
            vals = x[ids]
            x[ids] = np.where(
                vals > 0, vals / self.repetition_penalty, vals * self.repetition_penalty
            )
        if self.greedy:
            return int(np.argmax(x))
        x /= self.temperature
        if self.top_k is not None and self.top_k < x.size:
            kth = np.partition(x, -self.top_k)[-self.top_k]
            x[x < kth] = -np.inf
        probs = np.exp(x - x.max())
        probs /= probs.sum()
        if self.top_p is not None and self.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            cum = np.cumsum(probs[order])
            # keep the smallest prefix whose mass reaches top_p (always at least one token)
            keep = int(np.searchsorted(cum, self.top_p) + 1)
            mask = np.zeros_like(probs, dtype=bool)
            mask[order[:keep]] = True
            probs = np.where(mask, probs, 0.0)
            probs /= probs.sum()
        cdf = np.cumsum(probs)
        return int(
            min(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right"), probs.size - 1)
        )
