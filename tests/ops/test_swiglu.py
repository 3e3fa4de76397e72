"""pyengine.ops.swiglu against its float64 numpy reference: every ISA level, 1 and 2 threads, and
silu's (exp's) accuracy over a wide range."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    FP32_TINY,
    OP_WIDTHS,
    assert_canary_intact,
    assert_op_close,
    assert_same_for_any_thread_count,
    guarded,
    with_canary,
)

from pyengine.ops import swiglu

ROWS = (1, 3, 17)


def swiglu_reference(gate_up: np.ndarray) -> np.ndarray:
    """The spec: silu(gate) * up with gate, up = the two halves of the last axis and
    silu(g) = g / (1 + exp(-g)), in float64."""
    x = gate_up.astype(np.float64)
    inter = x.shape[-1] // 2
    gate, up = x[..., :inter], x[..., inter:]
    with np.errstate(over="ignore"):
        return gate / (1 + np.exp(-gate)) * up


def check(got, gate_up, what):
    # g * sigmoid(g) * up: a product of factors computed to a few ulp each, no cancellation.
    assert_op_close(got, swiglu_reference(gate_up), what=what)


@pytest.mark.parametrize("inter", OP_WIDTHS)
def test_matches_reference(isa, threads, inter):
    rng = np.random.default_rng(inter)
    for rows in ROWS:
        gate_up = (3 * rng.standard_normal((rows, 2 * inter))).astype(np.float32)
        got = swiglu(gate_up, isa=isa)
        assert got.shape == (rows, inter)
        check(got, gate_up, f"{isa} rows={rows} inter={inter}")


def test_silu_over_a_wide_range(isa):
    """silu over [-120, 120]: exp(-|g|) from 1 down through the subnormals to 0; silu(-100) is a
    tiny negative number or -0, silu(100) * up is exactly 100 * up; never NaN or inf."""
    gate = np.linspace(-120, 120, 200_001, dtype=np.float32)
    up = np.random.default_rng(4).uniform(-2, 2, gate.size).astype(np.float32)
    got = swiglu(np.concatenate([gate, up]), isa=isa)
    assert np.isfinite(got).all()
    check(got, np.concatenate([gate, up]), isa)
    got = swiglu(np.array([-100, 100, -3e38, 3e38, 1, 1, 1, 1], np.float32), isa=isa)
    assert -FP32_TINY <= got[0] <= 0 and np.signbit(got[0])
    np.testing.assert_array_equal(got[1:], np.array([100, 0, 3e38], np.float32))


@pytest.mark.parametrize("inter", [1, 17, 1536])
def test_leading_dims_and_out(isa, threads, inter):
    rng = np.random.default_rng(inter)
    gate_up = rng.standard_normal((2, 3, 2 * inter), dtype=np.float32)
    out, backing = with_canary((2, 3, inter))
    assert swiglu(gate_up, out=out, isa=isa) is out
    assert_canary_intact(backing, out.size)
    check(out, gate_up, isa)
    assert swiglu(np.zeros((0, 6), np.float32)).shape == (0, 3)
    assert swiglu(np.zeros((4, 0), np.float32)).shape == (4, 0)


@pytest.mark.parametrize(("rows", "inter"), [(300, 257), (40, 4096), (20000, 3), (7, 5000)])
def test_thread_count_does_not_change_a_bit(isa, rows, inter):
    gate_up = np.random.default_rng(rows).standard_normal((rows, 2 * inter), dtype=np.float32)
    assert_same_for_any_thread_count(lambda: swiglu(gate_up, isa=isa))


def test_position_does_not_change_a_bit(isa):
    """An element's result does not depend on where it falls: the kernel's four-vector main loop,
    its single-vector loop and its masked tail compute it the same way."""
    rng = np.random.default_rng(5)
    gate, up = (4 * rng.standard_normal((2, 300))).astype(np.float32)
    whole = swiglu(np.concatenate([gate, up]), isa=isa)
    for k in (1, 5, 16, 17, 63, 64, 65, 129):
        got = swiglu(np.concatenate([gate[k:], up[k:]]), isa=isa)
        np.testing.assert_array_equal(got, whole[k:])
    singles = [swiglu(np.array([gate[i], up[i]]), isa=isa) for i in range(0, 300, 7)]
    np.testing.assert_array_equal(np.concatenate(singles), whole[::7])


def test_no_reads_or_writes_past_buffers(isa, threads):
    rng = np.random.default_rng(2)
    for rows, inter in [(1, 1), (3, 7), (5, 17), (2, 33), (9, 65), (3, 129), (20, 4096)]:
        gate_up = guarded(rng.standard_normal((rows, 2 * inter), dtype=np.float32))
        out, backing = with_canary((rows, inter))
        swiglu(gate_up, out=out, isa=isa)
        assert_canary_intact(backing, rows * inter)
        check(out, gate_up, f"{isa} guarded {rows}x{inter}")
        guarded_out = guarded(np.zeros((rows, inter), np.float32))
        swiglu(gate_up, out=guarded_out, isa=isa)
        np.testing.assert_array_equal(guarded_out, out)


def test_errors():
    gate_up = np.ones((2, 6), np.float32)
    with pytest.raises(TypeError, match="gate_up must have dtype float32, got float64"):
        swiglu(np.ones((2, 6)))
    with pytest.raises(
        ValueError, match=r"even last dimension \(gate, then up\), got shape \(2, 7\)"
    ):
        swiglu(np.ones((2, 7), np.float32))
    with pytest.raises(ValueError, match=r"gate_up must be at least 1-D, got shape \(\)"):
        swiglu(np.array(1.0, np.float32))
    with pytest.raises(ValueError, match="gate_up must be C-contiguous"):
        swiglu(np.ones((6, 2), np.float32).T)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3\), got \(2, 6\)"):
        swiglu(gate_up, out=np.empty((2, 6), np.float32))
    with pytest.raises(ValueError, match="out must not share memory with gate_up"):
        swiglu(gate_up, out=gate_up[0].reshape(2, 3))
    readonly = np.empty((2, 3), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        swiglu(gate_up, out=readonly)
