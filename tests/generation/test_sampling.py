"""Sampler against transformers' logits processors, on random logits."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.generation.sampling import Sampler

torch = pytest.importorskip("torch")
gen_utils = pytest.importorskip("transformers.generation.logits_process")


def _kept(sampler: Sampler, logits: np.ndarray, draws: int = 400) -> set[int]:
    return {int(sampler(logits[None], [np.array([], np.int64)])[0]) for _ in range(draws)}


@pytest.mark.parametrize("top_p", [0.3, 0.8, 0.95])
def test_top_p_keeps_what_transformers_keeps(top_p):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(40).astype(np.float32) * 2
    warped = gen_utils.TopPLogitsWarper(top_p)(None, torch.from_numpy(logits[None]))
    allowed = set(np.flatnonzero(np.isfinite(warped[0].numpy())).tolist())
    kept = _kept(Sampler(temperature=1.0, top_p=top_p, seed=1), logits)
    assert kept <= allowed and len(kept) >= min(len(allowed), 2) - 1


@pytest.mark.parametrize("top_k", [1, 5])
def test_top_k_keeps_the_k_largest(top_k):
    logits = np.random.default_rng(1).standard_normal(30).astype(np.float32)
    kept = _kept(Sampler(temperature=1.0, top_k=top_k, seed=2), logits)
    assert kept <= set(np.argsort(-logits)[:top_k].tolist())


def test_repetition_penalty_matches_transformers():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((1, 50)).astype(np.float32)
    seen = np.array([3, 7, 7, 20, 41])
    want = gen_utils.RepetitionPenaltyLogitsProcessor(1.7)(
        torch.from_numpy(seen[None]), torch.from_numpy(logits.copy())
    )
    got = Sampler(repetition_penalty=1.7)(logits, [seen])
    assert got[0] == int(torch.argmax(want[0]))


def test_seeded_draws_repeat():
    logits = np.random.default_rng(3).standard_normal((2, 100)).astype(np.float32)
    seen = [np.array([], np.int64)] * 2
    a = [Sampler(temperature=0.9, seed=11)(logits, seen) for _ in range(3)]
    assert all(np.array_equal(a[0], x) for x in a)
