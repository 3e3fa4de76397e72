"""pyengine.ops.rms_norm against its float64 numpy reference: every ISA level, 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    OP_WIDTHS,
    assert_canary_intact,
    assert_op_close,
    assert_same_for_any_thread_count,
    guarded,
    with_canary,
)

from pyengine.ops import rms_norm

ROWS = (1, 3, 17)
EPS = 1e-6


def rms_norm_reference(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """The spec (HF LlamaRMSNorm, T5LayerNorm): y = x / sqrt(mean(x^2) + eps) * weight."""
    x64 = x.astype(np.float64)
    rms = np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps)
    return x64 / rms * weight.astype(np.float64)


def check(got, x, weight, eps, what):
    # Every factor is positive except x and weight themselves: a relative bound, over a row sum.
    assert_op_close(got, rms_norm_reference(x, weight, eps), n=x.shape[-1], what=what)


@pytest.mark.parametrize("n", OP_WIDTHS)
def test_matches_reference(isa, threads, n):
    rng = np.random.default_rng(n)
    weight = rng.standard_normal(n, dtype=np.float32)
    for rows in ROWS:
        x = (3 * rng.standard_normal((rows, n))).astype(np.float32)
        check(rms_norm(x, weight, EPS, isa=isa), x, weight, EPS, f"{isa} rows={rows} n={n}")


def test_leading_dims_eps_and_zero_rows(isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 65), dtype=np.float32)
    x[1, 2] = 0.0  # a zero row: 0 / sqrt(eps) = 0
    x[0, 1] *= 1e-3  # a row whose mean square is below eps = 1e-2
    weight = rng.standard_normal(65, dtype=np.float32)
    for eps in (1e-12, 1e-2):
        got = rms_norm(x, weight, eps, isa=isa)
        assert got.shape == x.shape
        check(got, x, weight, eps, f"{isa} eps={eps}")
    assert (rms_norm(x, weight, 1e-5, isa=isa)[1, 2] == 0).all()
    assert rms_norm(np.zeros((0, 8), np.float32), np.ones(8, np.float32), EPS).shape == (0, 8)
    assert rms_norm(np.zeros((3, 0), np.float32), np.ones(0, np.float32), EPS).shape == (3, 0)


@pytest.mark.parametrize("n", [1, 17, 576, 4096])
def test_in_place(isa, threads, n):
    rng = np.random.default_rng(n + 1)
    x = rng.standard_normal((40, n), dtype=np.float32)
    weight = rng.standard_normal(n, dtype=np.float32)
    want = rms_norm(x, weight, EPS, isa=isa)
    inplace = x.copy()
    assert rms_norm(inplace, weight, EPS, out=inplace, isa=isa) is inplace
    np.testing.assert_array_equal(inplace, want)
    check(inplace, x, weight, EPS, f"{isa} in place n={n}")


@pytest.mark.parametrize(("rows", "n"), [(300, 257), (40, 4096), (20000, 3), (7, 5000)])
def test_thread_count_does_not_change_a_bit(isa, rows, n):
    rng = np.random.default_rng(rows + n)
    x = rng.standard_normal((rows, n), dtype=np.float32)
    weight = rng.standard_normal(n, dtype=np.float32)
    assert_same_for_any_thread_count(lambda: rms_norm(x, weight, EPS, isa=isa))


def test_no_reads_or_writes_past_buffers(isa, threads):
    """Inputs end at an inaccessible page; outputs are checked for canary damage."""
    rng = np.random.default_rng(2)
    for rows, n in [(1, 1), (3, 7), (5, 17), (2, 33), (9, 65), (3, 129), (20, 4096)]:
        x = guarded(rng.standard_normal((rows, n), dtype=np.float32))
        weight = guarded(rng.standard_normal(n, dtype=np.float32))
        out, backing = with_canary((rows, n))
        rms_norm(x, weight, EPS, out=out, isa=isa)
        assert_canary_intact(backing, rows * n)
        check(out, x, weight, EPS, f"{isa} guarded {rows}x{n}")
        want = out.copy()
        rms_norm(x, weight, EPS, out=x, isa=isa)  # in place, on the guarded buffer
        np.testing.assert_array_equal(x, want)


def test_errors():
    x = np.ones((2, 5), np.float32)
    w = np.ones(5, np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        rms_norm(x.astype(np.float64), w, EPS)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        rms_norm([[1.0]], w, EPS)
    with pytest.raises(TypeError, match="weight must have dtype float32, got int32"):
        rms_norm(x, w.astype(np.int32), EPS)
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\), got \(4,\)"):
        rms_norm(x, np.ones(4, np.float32), EPS)
    with pytest.raises(ValueError, match=r"x must be at least 1-D, got shape \(\)"):
        rms_norm(np.array(1.0, np.float32), w, EPS)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        rms_norm(np.ones((5, 2), np.float32).T, np.ones(2, np.float32), EPS)
    with pytest.raises(ValueError, match="weight must be C-contiguous"):
        rms_norm(x, np.ones(10, np.float32)[::2], EPS)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got -1.0"):
        rms_norm(x, w, -1.0)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got nan"):
        rms_norm(x, w, float("nan"))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 5\), got \(5, 2\)"):
        rms_norm(x, w, EPS, out=np.empty((5, 2), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32, got float16"):
        rms_norm(x, w, EPS, out=np.empty((2, 5), np.float16))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        rms_norm(x, w, EPS, out=np.empty((5, 2), np.float32).T)
    readonly = np.empty((2, 5), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        rms_norm(x, w, EPS, out=readonly)
    backing = np.ones(11, np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        rms_norm(backing[:10].reshape(2, 5), w, EPS, out=backing[1:].reshape(2, 5))
    with pytest.raises(ValueError, match="out must not share memory with weight"):
        rms_norm(np.ones((1, 5), np.float32), w, EPS, out=w.reshape(1, 5))
    with pytest.raises(ValueError, match="unknown ISA level 'avx9'"):
        rms_norm(x, w, EPS, isa="avx9")
