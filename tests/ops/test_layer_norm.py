"""pyengine.ops.layer_norm against its float64 numpy reference: every ISA level, 1 and 2 threads."""

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

from pyengine.ops import layer_norm

ROWS = (1, 3, 17)
EPS = 1e-5


def layer_norm_reference(x, weight, bias, eps):
    """The spec (torch.nn.LayerNorm): (x - mean) / sqrt(var + eps) * weight + bias, biased var."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + eps) * weight.astype(np.float64)
    return y if bias is None else y + bias.astype(np.float64)


def check(got, x, weight, bias, eps, what):
    """The mean's rounding error (n eps mean|x|) is scaled by rstd |weight| into every output, and
    the (x - mean) * rstd * weight and bias terms may cancel: those are the terms' magnitudes."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(((x64 - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    w = np.abs(weight.astype(np.float64))
    scale = rstd * w * (np.abs(x64 - mean) + np.abs(x64).mean(axis=-1, keepdims=True))
    if bias is not None:
        scale = scale + np.abs(bias.astype(np.float64))
    ref = layer_norm_reference(x, weight, bias, eps)
    assert_op_close(got, ref, n=x.shape[-1], scale=scale, what=what)


@pytest.mark.parametrize("n", OP_WIDTHS)
def test_matches_reference(isa, threads, n):
    rng = np.random.default_rng(n)
    weight = rng.standard_normal(n, dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    for rows in ROWS:
        # An offset mean, as real activations have: the two-pass variance must not cancel.
        x = (2 * rng.standard_normal((rows, n)) + 5).astype(np.float32)
        for b in (bias, None):
            got = layer_norm(x, weight, b, EPS, isa=isa)
            check(got, x, weight, b, EPS, f"{isa} rows={rows} n={n} bias={b is not None}")


def test_large_mean_small_spread(isa):
    """mean 1000, std 0.01: a one-pass E[x^2] - mean^2 would lose every digit of the variance."""
    rng = np.random.default_rng(3)
    x = (1000 + 0.01 * rng.standard_normal((4, 384))).astype(np.float32)
    weight = np.ones(384, np.float32)
    check(layer_norm(x, weight, None, EPS, isa=isa), x, weight, None, EPS, isa)


def test_leading_dims_and_constant_rows(isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 33), dtype=np.float32)
    x[1, 1] = 7.0  # a constant row: var = 0, y = bias
    weight = rng.standard_normal(33, dtype=np.float32)
    bias = rng.standard_normal(33, dtype=np.float32)
    got = layer_norm(x, weight, bias, EPS, isa=isa)
    check(got, x, weight, bias, EPS, isa)
    np.testing.assert_array_equal(got[1, 1], bias)
    assert layer_norm(np.zeros((0, 4), np.float32), weight[:4], None, EPS).shape == (0, 4)


@pytest.mark.parametrize("n", [1, 17, 384, 4096])
def test_in_place(isa, threads, n):
    rng = np.random.default_rng(n + 1)
    x = rng.standard_normal((40, n), dtype=np.float32)
    weight = rng.standard_normal(n, dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    want = layer_norm(x, weight, bias, EPS, isa=isa)
    inplace = x.copy()
    assert layer_norm(inplace, weight, bias, EPS, out=inplace, isa=isa) is inplace
    np.testing.assert_array_equal(inplace, want)


@pytest.mark.parametrize(("rows", "n"), [(300, 257), (40, 4096), (20000, 3), (7, 5000)])
def test_thread_count_does_not_change_a_bit(isa, rows, n):
    rng = np.random.default_rng(rows + n)
    x = rng.standard_normal((rows, n), dtype=np.float32)
    weight = rng.standard_normal(n, dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    assert_same_for_any_thread_count(lambda: layer_norm(x, weight, bias, EPS, isa=isa))


def test_no_reads_or_writes_past_buffers(isa, threads):
    rng = np.random.default_rng(2)
    for rows, n in [(1, 1), (3, 7), (5, 17), (2, 33), (9, 65), (3, 129), (20, 4096)]:
        x = guarded(rng.standard_normal((rows, n), dtype=np.float32))
        weight = guarded(rng.standard_normal(n, dtype=np.float32))
        bias = guarded(rng.standard_normal(n, dtype=np.float32))
        for b in (bias, None):
            out, backing = with_canary((rows, n))
            layer_norm(x, weight, b, EPS, out=out, isa=isa)
            assert_canary_intact(backing, rows * n)
            check(out, x, weight, b, EPS, f"{isa} guarded {rows}x{n}")
        want = layer_norm(x, weight, bias, EPS, isa=isa)
        layer_norm(x, weight, bias, EPS, out=x, isa=isa)
        np.testing.assert_array_equal(x, want)


def test_errors():
    x = np.ones((2, 5), np.float32)
    w = np.ones(5, np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        layer_norm(x.astype(np.float64), w, None, EPS)
    with pytest.raises(TypeError, match="bias must have dtype float32, got float64"):
        layer_norm(x, w, np.ones(5), EPS)
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\), got \(6,\)"):
        layer_norm(x, w, np.ones(6, np.float32), EPS)
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\), got \(1, 5\)"):
        layer_norm(x, w.reshape(1, 5), None, EPS)
    with pytest.raises(TypeError, match="weight must be a numpy.ndarray"):
        layer_norm(x, None, None, EPS)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        layer_norm(np.ones((5, 2), np.float32).T, w[:2], None, EPS)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got inf"):
        layer_norm(x, w, None, float("inf"))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 5\), got \(10,\)"):
        layer_norm(x, w, None, EPS, out=np.empty(10, np.float32))
    readonly = np.empty((2, 5), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        layer_norm(x, w, None, EPS, out=readonly)
    bias = np.ones(5, np.float32)
    with pytest.raises(ValueError, match="out must not share memory with bias"):
        layer_norm(np.ones((1, 5), np.float32), w, bias, EPS, out=bias.reshape(1, 5))
    with pytest.raises(TypeError, match="isa must be a str"):
        layer_norm(x, w, None, EPS, isa=2)
