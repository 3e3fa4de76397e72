"""pyengine.ops.add: IEEE addition is correctly rounded, so it must match numpy's fp32 a + b
exactly, on every ISA level at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    OP_WIDTHS,
    assert_canary_intact,
    assert_same_for_any_thread_count,
    guarded,
    with_canary,
)

from pyengine.ops import add

ROWS = (1, 3, 17)


def add_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The spec: a + b in float64, rounded once to float32 (= IEEE fp32 addition)."""
    return (a.astype(np.float64) + b.astype(np.float64)).astype(np.float32)


@pytest.mark.parametrize("n", OP_WIDTHS)
def test_matches_reference_exactly(isa, threads, n):
    rng = np.random.default_rng(n)
    for rows in ROWS:
        a = rng.standard_normal((rows, n), dtype=np.float32)
        b = (1e3 * rng.standard_normal((rows, n))).astype(np.float32)
        np.testing.assert_array_equal(add(a, b, isa=isa), add_reference(a, b))
    flat = rng.standard_normal(n, dtype=np.float32)
    np.testing.assert_array_equal(add(flat, flat, isa=isa), 2 * flat)


def test_shapes_and_special_values(isa):
    a = np.array([np.inf, -np.inf, np.nan, 3e38, -0.0, 1e-45], np.float32)
    b = np.array([1.0, -np.inf, 1.0, 3e38, -0.0, 1e-45], np.float32)
    with np.errstate(over="ignore"):
        want = a + b  # inf, -inf, nan, inf, -0, 3e-45
    np.testing.assert_array_equal(add(a, b, isa=isa), want)
    assert np.signbit(add(a, b, isa=isa)[4])
    scalar = add(np.array(1.5, np.float32), np.array(2.0, np.float32), isa=isa)
    assert scalar.shape == () and scalar == 3.5
    assert add(np.ones((2, 0, 3), np.float32), np.ones((2, 0, 3), np.float32)).shape == (2, 0, 3)


@pytest.mark.parametrize("n", [1, 17, 4096, 100_003])
def test_out_may_alias_a_or_b(isa, threads, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n, dtype=np.float32)
    b = rng.standard_normal(n, dtype=np.float32)
    want = add_reference(a, b)
    into_a, into_b = a.copy(), b.copy()
    assert add(into_a, b, out=into_a, isa=isa) is into_a
    np.testing.assert_array_equal(into_a, want)
    assert add(a, into_b, out=into_b, isa=isa) is into_b
    np.testing.assert_array_equal(into_b, want)
    both = a.copy()
    add(both, both, out=both, isa=isa)
    np.testing.assert_array_equal(both, 2 * a)


@pytest.mark.parametrize("shape", [(100_003,), (300, 257), (20000, 3)])
def test_thread_count_does_not_change_a_bit(isa, shape):
    rng = np.random.default_rng(7)
    a = rng.standard_normal(shape, dtype=np.float32)
    b = rng.standard_normal(shape, dtype=np.float32)
    assert_same_for_any_thread_count(lambda: add(a, b, isa=isa))
    np.testing.assert_array_equal(add(a, b, isa=isa), add_reference(a, b))


def test_no_reads_or_writes_past_buffers(isa, threads):
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 7, 15, 17, 31, 33, 65, 129, 257, 4097, 40_001):
        a = guarded(rng.standard_normal(n, dtype=np.float32))
        b = guarded(rng.standard_normal(n, dtype=np.float32))
        out, backing = with_canary((n,))
        add(a, b, out=out, isa=isa)
        assert_canary_intact(backing, n)
        np.testing.assert_array_equal(out, add_reference(a, b))
        add(a, b, out=a, isa=isa)
        np.testing.assert_array_equal(a, out)


def test_errors():
    a = np.ones((2, 5), np.float32)
    with pytest.raises(TypeError, match="a must have dtype float32, got float64"):
        add(np.ones((2, 5)), a)
    with pytest.raises(TypeError, match="b must have dtype float32, got int32"):
        add(a, np.ones((2, 5), np.int32))
    with pytest.raises(ValueError, match=r"b must have the shape of a, \(2, 5\), got \(5,\)"):
        add(a, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        add(a, np.ones((5, 2), np.float32).T)
    with pytest.raises(ValueError, match="a must be C-contiguous"):
        add(np.ones((5, 2), np.float32).T, a)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 5\), got \(2, 6\)"):
        add(a, a, out=np.empty((2, 6), np.float32))
    backing = np.ones(11, np.float32)
    with pytest.raises(ValueError, match="out must not share memory with b"):
        add(a, backing[:10].reshape(2, 5), out=backing[1:].reshape(2, 5))
    readonly = np.empty((2, 5), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        add(a, a, out=readonly)
