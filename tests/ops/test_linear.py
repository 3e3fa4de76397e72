"""pyengine.ops.Linear against numpy, on every ISA level, at 1 and 2 threads.

Tests on small-integer data (exact in bfloat16 as in float32, and summed exactly) run for
Bf16Linear too; its rounding on random data is tested in test_bf16_linear.py."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    AWKWARD_SIZES,
    assert_canary_intact,
    assert_gemm_close,
    gemm_reference,
    guarded,
    small_int_matrix,
    with_canary,
)

import pyengine
from pyengine.ops import Bf16Linear, Linear

# (in_features, out_features) of real models: SmolLM2-135M, all-MiniLM-L6-v2, a 1.1B Llama.
MODEL_SHAPES = [(576, 1536), (1536, 576), (576, 192), (384, 1536), (1536, 384), (2048, 5632)]
ROWS = [1, 4, 16, 64, 512]


@pytest.fixture(params=[Linear, Bf16Linear], ids=["f32", "bf16"])
def linear_class(request):
    """Both weight storages, on the tests whose data both store exactly."""
    return request.param


def linear_reference(x, w, bias=None, residual=None):
    ref, bound = gemm_reference(x.reshape(-1, x.shape[-1]), w.T)
    if bias is not None:
        ref = ref + bias.astype(np.float64)
    if residual is not None:
        ref = ref + residual.reshape(ref.shape).astype(np.float64)
    shape = x.shape[:-1] + (w.shape[0],)
    return ref.reshape(shape), (bound + 2 * np.finfo(np.float32).eps * np.abs(ref)).reshape(shape)


@pytest.mark.parametrize("k", [1, 3, 17, 64, 129, 257, 1000])
def test_small_integers_are_exact_over_awkward_sizes(linear_class, isa, threads, k):
    """Integer data: every fp32 sum is exact, so any summation order must match exactly."""
    rng = np.random.default_rng(k)
    n_max, m_max = max(AWKWARD_SIZES), max(AWKWARD_SIZES)
    w_all = small_int_matrix(rng, (n_max, k))
    x_all = small_int_matrix(rng, (m_max, k))
    b_all = small_int_matrix(rng, (n_max,))
    for n in AWKWARD_SIZES:
        w = np.ascontiguousarray(w_all[:n])
        for use_bias in (False, True):
            bias = b_all[:n].copy() if use_bias else None
            lin = linear_class(w, bias, isa=isa)
            want_all = x_all.astype(np.float64) @ w.T.astype(np.float64)
            if use_bias:
                want_all += bias
            for m in AWKWARD_SIZES:
                got = lin(x_all[:m])
                np.testing.assert_array_equal(
                    got, want_all[:m].astype(np.float32), err_msg=f"M={m} N={n} K={k}"
                )


@pytest.mark.parametrize(("k", "n"), MODEL_SHAPES)
def test_model_shapes_random_within_error_bound(isa, threads, k, n):
    rng = np.random.default_rng(k * 7 + n)
    w = rng.standard_normal((n, k), dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    lin = Linear(w, bias, isa=isa)
    for m in ROWS:
        x = rng.standard_normal((m, k), dtype=np.float32)
        ref, bound = linear_reference(x, w, bias)
        assert_gemm_close(lin(x), ref, bound, f"{isa} M={m} K={k} N={n}")


def test_large_k_and_n_random(isa, threads):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((1000, 2100), dtype=np.float32)
    lin = Linear(w, isa=isa)
    for m in (1, 3, 5, 13, 200):
        x = rng.uniform(-1, 1, (m, 2100)).astype(np.float32)
        ref, bound = linear_reference(x, w)
        assert_gemm_close(lin(x), ref, bound, f"{isa} M={m}")


@pytest.mark.parametrize("m", [1, 3, 4, 5, 12, 13, 33, 200, 1000])
def test_thread_count_does_not_change_a_bit(linear_class, isa, m):
    rng = np.random.default_rng(m)
    w = rng.standard_normal((777, 1100), dtype=np.float32)
    bias = rng.standard_normal(777, dtype=np.float32)
    x = rng.standard_normal((m, 1100), dtype=np.float32)
    lin = linear_class(w, bias, isa=isa)
    previous = pyengine.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            pyengine.set_num_threads(t)
            results.append(lin(x))
    finally:
        pyengine.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_batched_leading_dims_and_1d_input(linear_class, isa):
    rng = np.random.default_rng(1)
    w = small_int_matrix(rng, (37, 29))
    lin = linear_class(w, isa=isa)
    x = small_int_matrix(rng, (2, 3, 5, 29))
    want = (x.astype(np.float64) @ w.T).astype(np.float32)
    np.testing.assert_array_equal(lin(x), want)
    np.testing.assert_array_equal(lin(x[1, 2, 3]), want[1, 2, 3])
    assert lin(x[:, :, :0]).shape == (2, 3, 0, 37)


def test_strided_weight_is_packed_like_its_copy(linear_class, isa):
    """A transposed view (GPT-2 Conv1D weights are stored [in, out]) packs like a copy."""
    rng = np.random.default_rng(2)
    conv1d_weight = small_int_matrix(rng, (45, 70))  # [in, out]
    x = small_int_matrix(rng, (9, 45))
    a = linear_class(conv1d_weight.T, isa=isa)(x)
    b = linear_class(np.ascontiguousarray(conv1d_weight.T), isa=isa)(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, (x.astype(np.float64) @ conv1d_weight).astype(np.float32))


def test_out_and_residual(linear_class, isa, threads):
    rng = np.random.default_rng(3)
    # K = 513 and 1025: a last K block of odd length after full ones (kc = 512 on avx2, 1024 on
    # avx512); 70 rows reach every level's many-row path
    for m, k, n in [(1, 65, 33), (4, 300, 129), (50, 1500, 100), (70, 513, 65), (70, 1025, 40)]:
        w = small_int_matrix(rng, (n, k))
        bias = small_int_matrix(rng, (n,))
        x = small_int_matrix(rng, (m, k))
        res = small_int_matrix(rng, (m, n))
        lin = linear_class(w, bias, isa=isa)
        want = (x.astype(np.float64) @ w.T + bias + res).astype(np.float32)
        out, backing = with_canary((m, n))
        assert lin(x, out=out, residual=res) is out
        np.testing.assert_array_equal(out, want)
        assert_canary_intact(backing, m * n)
        # In place: out += x @ W^T + b (K spans several cache blocks for the larger cases).
        inplace = res.copy()
        lin(x, out=inplace, residual=inplace)
        np.testing.assert_array_equal(inplace, want)


def test_no_reads_or_writes_past_buffers(linear_class, isa, threads):
    """Inputs end at an inaccessible page; the output is checked for canary damage."""
    rng = np.random.default_rng(4)
    for m, k, n in [(1, 1, 1), (3, 7, 17), (13, 33, 65), (5, 129, 31), (200, 257, 63)]:
        w = guarded(small_int_matrix(rng, (n, k)))
        bias = guarded(small_int_matrix(rng, (n,)))
        x = guarded(small_int_matrix(rng, (m, k)))
        res = guarded(small_int_matrix(rng, (m, n)))
        lin = linear_class(w, bias, isa=isa)
        out, backing = with_canary((m, n))
        lin(x, out=out, residual=res)
        assert_canary_intact(backing, m * n)
        guarded_out = guarded(np.zeros((m, n), np.float32))
        lin(x, out=guarded_out)
        want = (x.astype(np.float64) @ w.T.astype(np.float64) + bias).astype(np.float32)
        np.testing.assert_array_equal(guarded_out, want)


def test_zero_sized_dimensions(linear_class, isa):
    rng = np.random.default_rng(6)
    bias = small_int_matrix(rng, (5,))
    lin = linear_class(np.zeros((5, 0), np.float32), bias, isa=isa)  # in_features = 0: y = bias
    for rows in (3, 40, 70):  # every path: few rows, many rows
        np.testing.assert_array_equal(
            lin(np.zeros((rows, 0), np.float32)), np.tile(bias, (rows, 1))
        )
    empty = linear_class(np.zeros((0, 4), np.float32), isa=isa)
    assert empty(np.ones((2, 4), np.float32)).shape == (2, 0)


def test_properties_and_repr():
    lin = Linear(np.ones((6, 10), np.float32), np.zeros(6, np.float32))
    assert (lin.in_features, lin.out_features, lin.has_bias) == (10, 6, True)
    assert lin.isa == pyengine.cpu_info()["isa_level"]
    # the amx level runs fp32 on the avx512 kernels (its tile unit computes in bf16 only)
    assert lin.kernel.startswith("f32_gemm_")
    assert lin.kernel.endswith("avx512" if lin.isa == "amx" else lin.isa)
    assert lin.packed_nbytes >= 6 * 10 * 4
    assert "in_features=10" in repr(lin)
