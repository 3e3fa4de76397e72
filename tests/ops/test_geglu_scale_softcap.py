"""pyengine.ops.geglu, scale and softcap (the Gemma families' elementwise ops) against their
float64 references: every ISA level, 1 and 2 threads, awkward widths, in place, no stray
reads or writes, results independent of the thread count."""

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

from pyengine.ops import geglu, scale, softcap


def gelu_tanh64(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def geglu_reference(gate_up):
    x = gate_up.astype(np.float64)
    inter = x.shape[-1] // 2
    return gelu_tanh64(x[..., :inter]) * x[..., inter:]


@pytest.mark.parametrize("inter", OP_WIDTHS)
def test_geglu(isa, threads, inter):
    rng = np.random.default_rng(inter)
    for rows in (1, 3, 17):
        gate_up = (3 * rng.standard_normal((rows, 2 * inter))).astype(np.float32)
        got = geglu(gate_up, isa=isa)
        assert got.shape == (rows, inter)
        # gelu cancels for gate < 0 (0.5 g (1 + tanh)): the scale term |g * up| covers it
        g = np.abs(gate_up[:, :inter].astype(np.float64) * gate_up[:, inter:])
        assert_op_close(got, geglu_reference(gate_up), scale=g, what=f"rows={rows}")


@pytest.mark.parametrize("n", OP_WIDTHS)
def test_scale_and_softcap(isa, threads, n):
    rng = np.random.default_rng(n)
    x = (20 * rng.standard_normal(n)).astype(np.float32)
    assert_op_close(scale(x, 25.298, isa=isa), 25.298 * x.astype(np.float64))
    for cap in (0.5, 30.0):
        ref = cap * np.tanh(x.astype(np.float64) / cap)
        assert_op_close(softcap(x, cap, isa=isa), ref, what=f"cap={cap}")


def test_in_place_and_thread_count(isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 1000)).astype(np.float32)
    want = softcap(x, 3.0, isa=isa)
    y = x.copy()
    assert softcap(y, 3.0, out=y, isa=isa) is y
    np.testing.assert_array_equal(y, want)
    y = x.copy()
    scale(y, 2.0, out=y, isa=isa)
    np.testing.assert_array_equal(y, 2 * x)
    assert_same_for_any_thread_count(lambda: geglu(x, isa=isa))
    assert_same_for_any_thread_count(lambda: softcap(x, 3.0, isa=isa))


def test_no_reads_or_writes_past_buffers(isa, threads):
    for n in (1, 7, 17, 33):
        x = guarded(np.linspace(-5, 5, 2 * n, dtype=np.float32))
        out, backing = with_canary((n,))
        geglu(x, out=out, isa=isa)
        assert_canary_intact(backing, n)
        out, backing = with_canary((2 * n,))
        softcap(x, 2.0, out=out, isa=isa)
        assert_canary_intact(backing, 2 * n)


def test_errors():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="cap must be a finite number > 0"):
        softcap(x, 0.0)
    with pytest.raises(ValueError, match="s must be a finite number"):
        scale(x, float("inf"))
    with pytest.raises(ValueError, match="even last dimension"):
        geglu(np.ones(3, np.float32))
    with pytest.raises(TypeError):
        scale(x.astype(np.float64), 2.0)
