"""pyengine.ops.matmul against numpy, on every ISA level, at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import AWKWARD_SIZES, assert_gemm_close, gemm_reference, small_int_matrix

from pyengine.ops import matmul


@pytest.mark.parametrize("k", [1, 7, 65, 257, 1000])
def test_2d_small_integers_exact(isa, threads, k):
    rng = np.random.default_rng(k)
    a_all = small_int_matrix(rng, (257, k))
    b_all = small_int_matrix(rng, (k, 257))
    for m in AWKWARD_SIZES[::2]:
        for n in AWKWARD_SIZES[1::2]:
            a, b = a_all[:m], np.ascontiguousarray(b_all[:, :n])
            want = (a.astype(np.float64) @ b).astype(np.float32)
            np.testing.assert_array_equal(matmul(a, b, isa=isa), want, err_msg=f"{m}x{k}x{n}")


def test_batched(isa, threads):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 33, 70), dtype=np.float32)
    b = rng.standard_normal((3, 70, 17), dtype=np.float32)
    got = matmul(a, b, isa=isa)
    assert got.shape == (3, 33, 17)
    for i in range(3):
        ref, bound = gemm_reference(a[i], b[i])
        assert_gemm_close(got[i], ref, bound, f"batch {i}")
    shared_b = rng.standard_normal((70, 9), dtype=np.float32)
    got = matmul(a, shared_b, isa=isa)
    ref, bound = gemm_reference(a.reshape(-1, 70), shared_b)
    assert_gemm_close(got.reshape(-1, 9), ref, bound, "2-D b")


def test_square_random(isa, threads):
    rng = np.random.default_rng(1)
    for size in (255, 512):
        a = rng.standard_normal((size, size), dtype=np.float32)
        b = rng.standard_normal((size, size), dtype=np.float32)
        ref, bound = gemm_reference(a, b)
        assert_gemm_close(matmul(a, b, isa=isa), ref, bound, f"{size}^3")
