"""Bf16Linear on random data: the weight (and, on the AMX path, the input) rounded to bfloat16
exactly as the numpy reference rounds it, then summed in float32 within the GEMM error bound.
Small-integer tests shared with Linear are in test_linear.py."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import AWKWARD_SIZES, assert_gemm_close, gemm_reference

from pyengine.ops import Bf16Linear, Linear
from pyengine.runtime.reference import round_bf16

# (in_features, out_features) of real models: SmolLM2-135M, all-MiniLM-L6-v2, a 1.1B Llama.
MODEL_SHAPES = [(576, 1536), (1536, 576), (384, 1536), (1536, 384), (2048, 5632)]
ROWS = [1, 4, 5, 16, 64, 512]


def bf16_reference(lin, x, w, bias=None):
    """The exact result of the operands as Bf16Linear rounds them, and the fp32 error bound."""
    xr = round_bf16(x) if lin.rounds_input(x.shape[0]) else x
    ref, bound = gemm_reference(xr, round_bf16(w).T)
    if bias is not None:
        ref = ref + bias.astype(np.float64)
        bound = bound + np.finfo(np.float32).eps * np.abs(ref)
    return ref, bound


@pytest.mark.parametrize("k", [1, 2, 3, 17, 31, 32, 33, 63, 65, 129, 1000])
def test_awkward_sizes_match_the_rounded_reference(isa, threads, k):
    rng = np.random.default_rng(k)
    n_max, m_max = max(AWKWARD_SIZES), max(AWKWARD_SIZES)
    w_all = rng.standard_normal((n_max, k), dtype=np.float32)
    x_all = rng.standard_normal((m_max, k), dtype=np.float32)
    b_all = rng.standard_normal(n_max, dtype=np.float32)
    for n in AWKWARD_SIZES:
        w, bias = np.ascontiguousarray(w_all[:n]), b_all[:n].copy()
        lin = Bf16Linear(w, bias, isa=isa)
        for m in AWKWARD_SIZES:
            x = x_all[:m]
            ref, bound = bf16_reference(lin, x, w, bias)
            assert_gemm_close(lin(x), ref, bound, f"{isa} M={m} N={n} K={k}")


@pytest.mark.parametrize(("k", "n"), MODEL_SHAPES)
def test_model_shapes(isa, threads, k, n):
    rng = np.random.default_rng(k * 7 + n)
    w = rng.standard_normal((n, k), dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    lin = Bf16Linear(w, bias, isa=isa)
    for m in ROWS:
        x = rng.standard_normal((m, k), dtype=np.float32)
        ref, bound = bf16_reference(lin, x, w, bias)
        assert_gemm_close(lin(x), ref, bound, f"{isa} M={m} K={k} N={n}")


def test_weight_rounds_to_nearest_even(isa):
    """Multiplying by identity rows reads back the stored weight: halfway cases go to the even
    neighbour, others to the nearest; infinities and overflow to infinity as in IEEE."""
    one = 1.0
    ulp = 2.0**-7  # bfloat16's spacing in [1, 2)
    values = [
        one + ulp / 2,  # tie -> 1 (even)
        one + 3 * ulp / 2,  # tie -> 1 + 2 ulp (even)
        one + ulp / 2 + 2.0**-20,  # just above the tie -> 1 + ulp
        -(one + ulp / 2 - 2.0**-20),  # just below -> -1
        3.0e38,  # below the largest bf16 (3.39e38): the nearest finite value
        3.4e38,  # beyond the largest bf16 + half an ulp -> inf
        np.inf,
        -np.inf,
    ]
    w = np.array(values, np.float32).reshape(-1, 1)  # out_features = len(values), K = 1
    want = round_bf16(w).reshape(-1)
    assert want[0] == 1.0 and want[1] == one + 2 * ulp and want[2] == one + ulp
    assert want[5] == np.inf
    lin = Bf16Linear(w, isa=isa)
    for rows in (1, 40):  # the few-row path and (on amx) the tile path
        got = lin(np.ones((rows, 1), np.float32))
        np.testing.assert_array_equal(got, np.tile(want, (rows, 1)))


def test_subnormal_weights(isa):
    """Kept on the few-row path; the AMX tile unit reads subnormal bf16 inputs as zero."""
    lin = Bf16Linear(np.full((3, 1), 1e-40, np.float32), isa=isa)
    assert lin(np.ones((1, 1), np.float32))[0, 0] == round_bf16(np.float32(1e-40))
    flushed = lin.rounds_input(40)
    assert (lin(np.ones((40, 1), np.float32))[0, 0] == 0.0) == flushed


def test_round_bf16_reference_agrees_with_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.standard_normal(10000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 10000),
            (1 + (np.arange(512) + 0.5) * 2.0**-7).astype(np.float32),  # halfway cases
            np.array([0.0, -0.0, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-40], np.float32),
        ]
    ).astype(np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(round_bf16(x), want)
    assert np.isnan(round_bf16(np.array([np.nan], np.float32)))[0]


def test_rounds_input_only_on_the_tile_path(isa):
    lin = Bf16Linear(np.ones((8, 8), np.float32), isa=isa)
    assert not lin.rounds_input(1) and not lin.rounds_input(4)
    assert lin.rounds_input(5) == (isa == "amx")
    # what the flag promises: an input that bf16 cannot hold comes out rounded, or not
    x = np.full((64, 8), 1 + 2.0**-12, np.float32)
    got = lin(x)[0, 0]
    assert got == (8.0 if lin.rounds_input(64) else np.float32(8 * (1 + 2.0**-12)))


# rows -> path, per level (Bf16Linear.path): few rows on the GEMV kernel; then AMX tiles, or the
# level's fp32 micro-kernel on widened weights from 8 (generic, avx2) or 64 (avx512) rows.
EXPECTED_PATHS = {
    "generic": {1: "gemv", 4: "gemv", 7: "gemv", 8: "widened", 500: "widened"},
    "avx2": {1: "gemv", 4: "gemv", 7: "gemv", 8: "widened", 500: "widened"},
    "avx512": {1: "gemv", 4: "gemv", 5: "gemv", 63: "gemv", 64: "widened", 500: "widened"},
    "amx": {1: "gemv", 4: "gemv", 5: "tiles", 64: "tiles", 500: "tiles"},
}


def test_path_by_row_count(isa):
    lin = Bf16Linear(np.ones((8, 8), np.float32), isa=isa)
    for rows, path in EXPECTED_PATHS[isa].items():
        assert lin.path(rows) == path, (isa, rows)
        assert lin.rounds_input(rows) == (path == "tiles")


def test_half_the_bytes_of_float32():
    w = np.ones((100, 256), np.float32)
    assert Bf16Linear(w).packed_nbytes * 2 == pytest.approx(Linear(w).packed_nbytes, rel=0.3)
    lin = Bf16Linear(w, np.zeros(100, np.float32))
    assert (lin.in_features, lin.out_features, lin.has_bias) == (256, 100, True)
    assert lin.kernel.startswith("bf16_") and lin.kernel.endswith(lin.isa)
    assert repr(lin).startswith("Bf16Linear(in_features=256")


def test_bad_arguments_are_named():
    lin = Bf16Linear(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        lin(np.ones((2, 5), np.float32))
    with pytest.raises(TypeError, match="weight"):
        Bf16Linear(np.ones((4, 3), np.float64))
