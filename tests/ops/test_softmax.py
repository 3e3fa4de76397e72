"""pyengine.ops.softmax against its float64 numpy reference: every ISA level, 1 and 2 threads,
and exp's accuracy over its whole range."""

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

from pyengine.ops import softmax

ROWS = (1, 3, 17)


def softmax_reference(x: np.ndarray) -> np.ndarray:
    """The spec: exp(x - max) / sum(exp(x - max)) along the last axis, in float64."""
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check(got, x, what):
    """exp(x - max) is a positive quotient over a row sum (relative bound, n terms), but x - max is
    rounded once in fp32, and exp turns that absolute error into |x - max| relative error."""
    x64 = x.astype(np.float64)
    ref = softmax_reference(x)
    scale = ref * np.abs(x64 - x64.max(axis=-1, keepdims=True))
    assert_op_close(got, ref, n=x.shape[-1], scale=scale, what=what)


@pytest.mark.parametrize("n", OP_WIDTHS)
def test_matches_reference(isa, threads, n):
    rng = np.random.default_rng(n)
    for rows in ROWS:
        x = (4 * rng.standard_normal((rows, n))).astype(np.float32)
        check(softmax(x, isa=isa), x, f"{isa} rows={rows} n={n}")


def test_exp_over_its_whole_range(isa):
    """Rows [0, -d]: softmax = [1, e^-d] / (1 + e^-d) tests exp(-d) for d up to 110, through the
    subnormals (below 1e-38) to 0; large-magnitude rows never give NaN or inf."""
    d = np.linspace(0, 110, 20001, dtype=np.float32)
    x = np.stack([np.zeros_like(d), -d], axis=1)
    got = softmax(x, isa=isa)
    check(got, x, f"{isa} [0, -d]")
    # Opposite signs, huge magnitudes: the max subtraction keeps everything finite.
    x = np.array([[1e4, -1e4], [-1e4, 1e4], [3e38, -3e38], [-1e4, -1e4]], np.float32)
    got = softmax(x, isa=isa)
    np.testing.assert_array_equal(got, [[1, 0], [0, 1], [1, 0], [0.5, 0.5]])
    # Logits spread over +-80 in long rows.
    rng = np.random.default_rng(5)
    x = rng.uniform(-80, 80, (4, 1000)).astype(np.float32)
    got = softmax(x, isa=isa)
    assert np.isfinite(got).all()
    check(got, x, f"{isa} uniform(-80, 80)")


def test_rows_sum_to_one_and_leading_dims(isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 129), dtype=np.float32)
    got = softmax(x, isa=isa)
    assert got.shape == x.shape
    check(got, x, isa)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=0, atol=129 * 2**-23)
    np.testing.assert_array_equal(softmax(np.ones((3, 1), np.float32), isa=isa), 1.0)
    assert softmax(np.zeros((0, 5), np.float32)).shape == (0, 5)
    assert softmax(np.zeros((5, 0), np.float32)).shape == (5, 0)


@pytest.mark.parametrize("n", [1, 17, 576, 4096])
def test_in_place(isa, threads, n):
    rng = np.random.default_rng(n + 1)
    x = rng.standard_normal((40, n), dtype=np.float32)
    want = softmax(x, isa=isa)
    inplace = x.copy()
    assert softmax(inplace, out=inplace, isa=isa) is inplace
    np.testing.assert_array_equal(inplace, want)


@pytest.mark.parametrize(("rows", "n"), [(300, 257), (40, 4096), (20000, 3), (7, 5000)])
def test_thread_count_does_not_change_a_bit(isa, rows, n):
    x = np.random.default_rng(rows + n).standard_normal((rows, n), dtype=np.float32)
    assert_same_for_any_thread_count(lambda: softmax(x, isa=isa))


def test_no_reads_or_writes_past_buffers(isa, threads):
    rng = np.random.default_rng(2)
    for rows, n in [(1, 1), (3, 7), (5, 17), (2, 33), (9, 65), (3, 129), (20, 4096)]:
        # All negative: a tail that read zeros past the row end would change the max.
        x = guarded(-1 - rng.uniform(0, 5, (rows, n)).astype(np.float32))
        out, backing = with_canary((rows, n))
        softmax(x, out=out, isa=isa)
        assert_canary_intact(backing, rows * n)
        check(out, x, f"{isa} guarded {rows}x{n}")
        want = out.copy()
        softmax(x, out=x, isa=isa)
        np.testing.assert_array_equal(x, want)


def test_errors():
    x = np.ones((2, 5), np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32, got int64"):
        softmax(np.ones((2, 5), np.int64))
    with pytest.raises(ValueError, match=r"x must be at least 1-D, got shape \(\)"):
        softmax(np.array(1.0, np.float32))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        softmax(x.T)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 5\), got \(2, 4\)"):
        softmax(x, out=np.empty((2, 4), np.float32))
    backing = np.ones(11, np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        softmax(backing[:10].reshape(2, 5), out=backing[1:].reshape(2, 5))
    readonly = np.empty((2, 5), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        softmax(x, out=readonly)
