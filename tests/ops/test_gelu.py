"""pyengine.ops.gelu (tanh approximation and exact erf) against float64 numpy/math.erf references:
every ISA level, 1 and 2 threads, and tanh's and erf's accuracy over a wide range."""

from __future__ import annotations

import math

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

from pyengine.ops import gelu

ROWS = (1, 3, 17)
MODES = ("tanh", "none")
_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_reference(x: np.ndarray, approximate: str) -> np.ndarray:
    """The spec. "tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (HF gelu_new);
    "none": 0.5 x (1 + erf(x / sqrt(2))) (HF "gelu"), in float64."""
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)
            return 0.5 * x64 * (1 + np.tanh(inner))
        return 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))


def check(got, x, approximate, what):
    """0.5 x (1 + t): for x >= 0 both terms are positive (relative bound); for x < 0, t -> -1
    and the error of t, times 0.5 |x|, remains where the result cancels to ~0: scale |x|."""
    x64 = x.astype(np.float64)
    scale = np.where(x64 < 0, np.abs(x64), 0.0)
    assert_op_close(got, gelu_reference(x, approximate), scale=scale, what=what)


@pytest.mark.parametrize("approximate", MODES)
@pytest.mark.parametrize("n", OP_WIDTHS)
def test_matches_reference(isa, threads, n, approximate):
    rng = np.random.default_rng(n)
    for rows in ROWS:
        x = (3 * rng.standard_normal((rows, n))).astype(np.float32)
        got = gelu(x, approximate=approximate, isa=isa)
        check(got, x, approximate, f"{isa} {approximate} rows={rows} n={n}")


@pytest.mark.parametrize("approximate", MODES)
def test_tanh_and_erf_over_a_wide_range(isa, approximate):
    """Dense over [-60, 60] (both branches of tanh and erf, the saturation, the cancelling
    tail), tiny and subnormal inputs, and huge ones: never NaN or inf for a finite input."""
    dense = np.linspace(-60, 60, 240_001, dtype=np.float32)
    tiny = np.geomspace(1e-44, 1e-3, 2000).astype(np.float32)
    huge = np.geomspace(1e3, 3.4e38, 2000).astype(np.float32)
    x = np.concatenate([dense, tiny, -tiny, huge, -huge, [0.0, -0.0]]).astype(np.float32)
    got = gelu(x, approximate=approximate, isa=isa)
    assert np.isfinite(got).all()
    check(got, x, approximate, f"{isa} {approximate}")
    # Saturation is exact: gelu(x) = x for large x, and 0 (or -0) for very negative x.
    special = np.array([50, 1e4, 3e38, -50, -1e4, -3e38], np.float32)
    got = gelu(special, approximate=approximate, isa=isa)
    np.testing.assert_array_equal(got, np.array([50, 1e4, 3e38, 0, 0, 0], np.float32))


def test_default_is_tanh(isa):
    x = np.linspace(-5, 5, 101, dtype=np.float32)
    np.testing.assert_array_equal(gelu(x, isa=isa), gelu(x, approximate="tanh", isa=isa))
    assert not np.array_equal(gelu(x, isa=isa), gelu(x, approximate="none", isa=isa))


@pytest.mark.parametrize("approximate", MODES)
@pytest.mark.parametrize("n", [1, 17, 4096, 100_003])
def test_in_place(isa, threads, n, approximate):
    x = np.random.default_rng(n).standard_normal(n, dtype=np.float32)
    want = gelu(x, approximate=approximate, isa=isa)
    inplace = x.copy()
    assert gelu(inplace, approximate=approximate, out=inplace, isa=isa) is inplace
    np.testing.assert_array_equal(inplace, want)


@pytest.mark.parametrize("approximate", MODES)
@pytest.mark.parametrize("shape", [(100_003,), (300, 257), (64, 1536)])
def test_thread_count_does_not_change_a_bit(isa, shape, approximate):
    x = np.random.default_rng(3).standard_normal(shape, dtype=np.float32)
    assert_same_for_any_thread_count(lambda: gelu(x, approximate=approximate, isa=isa))


@pytest.mark.parametrize("approximate", MODES)
def test_position_does_not_change_a_bit(isa, approximate):
    """An element's result does not depend on where it falls: the kernels' four-vector main loop,
    their single-vector loop and their masked tail compute it the same way."""
    x = (4 * np.random.default_rng(5).standard_normal(300)).astype(np.float32)
    whole = gelu(x, approximate=approximate, isa=isa)
    for k in (1, 5, 16, 17, 63, 64, 65, 129):
        np.testing.assert_array_equal(gelu(x[k:], approximate=approximate, isa=isa), whole[k:])
    singles = [gelu(x[i : i + 1], approximate=approximate, isa=isa) for i in range(0, 300, 7)]
    np.testing.assert_array_equal(np.concatenate(singles), whole[::7])


@pytest.mark.parametrize("approximate", MODES)
def test_no_reads_or_writes_past_buffers(isa, threads, approximate):
    rng = np.random.default_rng(2)
    for shape in [(1,), (3,), (7,), (2, 17), (33,), (3, 65), (129,), (4097,), (40_001,)]:
        x = guarded(rng.standard_normal(shape, dtype=np.float32))
        out, backing = with_canary(shape)
        gelu(x, approximate=approximate, out=out, isa=isa)
        assert_canary_intact(backing, x.size)
        check(out, x, approximate, f"{isa} guarded {shape}")
        want = out.copy()
        gelu(x, approximate=approximate, out=x, isa=isa)
        np.testing.assert_array_equal(x, want)


def test_errors():
    x = np.ones((2, 5), np.float32)
    with pytest.raises(ValueError, match="approximate must be 'tanh' or 'none', got 'erf'"):
        gelu(x, approximate="erf")
    with pytest.raises(TypeError):
        gelu(x, approximate=None)
    with pytest.raises(TypeError, match="x must have dtype float32, got float16"):
        gelu(x.astype(np.float16))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        gelu(x.T)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 5\), got \(5, 2\)"):
        gelu(x, out=np.empty((5, 2), np.float32))
    backing = np.ones(11, np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        gelu(backing[:10], out=backing[1:])
    with pytest.raises(ValueError, match="unknown ISA level"):
        gelu(x, isa="sse9")
