"""QuantLinear: weights kept in GGUF block formats, against `gguf.quants.dequantize` (an
independent reference) followed by a float64 product.

Random bytes are valid blocks in every format once the fp16 scales are set to finite values,
so the sweeps need no quantizer. Three kinds of check:
- exact: decoding (dequantize, embedding) equals gguf's float32 values bit for bit; with
  activations that quantize without error (integers with max |x| = 127 per 32 values, so the
  scale is 1) and power-of-two weight scales, every product and sum is exact in fp32 and the
  dot path equals the float64 product exactly.
- bounded: with random activations the dot path's error comes from quantizing x to int8 per
  32 values: |x - q d| <= d / 2 with d = max|x_b| / 127, so
      |y - y_ref| <= sum_b (d_b / 2) sum_{l in b} |w_l|  +  fp32 summation (helpers' bound).
  The widened path (many rows) multiplies float32 x by the dequantized weights: the GEMM bound.
- identical: 1 and 2 threads give the same bits.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import EPS32, assert_gemm_close, gemm_reference

from pyengine import _C
from pyengine.ops import QuantLinear

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize, quantize  # noqa: E402

FORMATS = {f["name"]: f for f in _C.quant_formats()}
NAMES = list(FORMATS)
DOT_ROWS = [1, 2, 3, 4, 5, 7, 16]
WIDE_ROWS = [17, 33]
OUT_SIZES = [1, 3, 7, 17, 31, 33, 65, 129]

# byte offsets of each format's fp16 scales, and whether each is a signed scale (d) or a
# non-negative one (K-quants' d and dmin multiply unsigned 6-bit factors) or an offset (m)
SCALES = {
    "Q8_0": [(0, "d")],
    "Q4_0": [(0, "d")],
    "Q5_0": [(0, "d")],
    "Q4_1": [(0, "d"), (2, "m")],
    "Q5_1": [(0, "d"), (2, "m")],
    "Q4_K": [(0, "d+"), (2, "d+")],
    "Q5_K": [(0, "d+"), (2, "d+")],
    "Q6_K": [(208, "d")],
}


def random_blocks(rng, name: str, n: int, k: int, exact: bool = False) -> np.ndarray:
    """uint8 [n, row_bytes]: random bytes with finite fp16 scales (powers of two if exact)."""
    f = FORMATS[name]
    nb = k // f["block_elems"]
    raw = rng.integers(0, 256, size=(n, nb, f["block_bytes"]), dtype=np.uint8)
    for off, kind in SCALES[name]:
        if exact:  # one binade: every sum is an integer multiple of 2**-6 below 2**24 units
            vals = np.full((n, nb), 2.0**-6)
            if kind != "d+":
                vals *= rng.choice([-1.0, 1.0], size=(n, nb))
        elif kind == "m":
            vals = rng.uniform(-0.5, 0.5, (n, nb))
        elif kind == "d+":
            vals = rng.uniform(0, 0.01, (n, nb))
        else:
            vals = rng.uniform(-0.05, 0.05, (n, nb))
        raw[:, :, off : off + 2] = vals.astype(np.float16).view(np.uint8).reshape(n, nb, 2)
    if exact and name == "Q6_K":  # small int8 sub-scales keep every sum below 2**24
        raw[:, :, 192:208] = rng.integers(-7, 8, size=(n, nb, 16)).astype(np.int8).view(np.uint8)
    if exact and name in ("Q4_K", "Q5_K"):  # 6-bit scales and mins <= 7
        raw[:, :, 4:16] &= 7
    return raw.reshape(n, -1)


def reference_weight(raw: np.ndarray, name: str, k: int) -> np.ndarray:
    t = getattr(gguf.GGMLQuantizationType, name)
    return dequantize(raw, t).reshape(raw.shape[0], k).astype(np.float32)


def quantized_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x as the dot path sees it (q * d per 32 values) and the step d of each value."""
    m, k = x.shape
    xb = x.reshape(m, k // 32, 32)
    d = np.abs(xb).max(axis=2, keepdims=True) / np.float32(127)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.rint(xb * inv)
    return (q * d.astype(np.float64)).reshape(m, k), np.broadcast_to(d, xb.shape).reshape(m, k)


def dot_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Activation quantization (step d/2 per value) plus fp32 summation over sub-blocks."""
    _, step = quantized_activations(x)
    quant = (step.astype(np.float64) / 2) @ np.abs(w.astype(np.float64)).T
    xq, _ = quantized_activations(x)
    _, fp32 = gemm_reference(xq.astype(np.float32), w.T)
    return 1.0001 * quant + fp32


def k_sizes(name: str) -> list[int]:
    e = FORMATS[name]["block_elems"]
    return [e, 3 * e, 1024 if e == 32 else 2048] if e == 256 else [32, 96, 160, 1024]


@pytest.mark.parametrize("name", NAMES)
def test_dequantize_matches_gguf_exactly(isa, name):
    rng = np.random.default_rng(1)
    for k in k_sizes(name):
        raw = random_blocks(rng, name, 33, k)
        lin = QuantLinear(raw, name, k, isa=isa)
        want = reference_weight(raw, name, k)
        np.testing.assert_array_equal(lin.dequantize(), want)
        ids = np.array([0, 32, 5, 5, 17], np.int64)
        np.testing.assert_array_equal(lin.embedding(ids), want[ids])
        # x8 layout: groups of 8 rows; Q4_K's scales unpacked to bytes (1184 per 8 x 144)
        rows = -(-33 // 8) * 8 if lin.interleaved else 33
        stored = rows * raw.shape[1]  # K-quants' x8: 6-bit scales unpacked, +32 bytes per 8
        if lin.interleaved and name in ("Q4_K", "Q5_K"):
            group = 8 * FORMATS[name]["block_bytes"]
            stored = stored * (group + 32) // group
        assert lin.packed_nbytes == stored and lin.row_bytes == raw.shape[1]
        x8 = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")
        assert lin.interleaved == (isa != "generic" and name in x8)


@pytest.mark.parametrize("name", NAMES)
def test_dot_path_is_exact_on_exactly_quantizable_activations(isa, threads, name):
    rng = np.random.default_rng(2)
    # sizes whose largest possible sum stays below 2**24 units (K <= 256 for K-quants)
    for k in k_sizes(name)[: 1 if FORMATS[name]["block_elems"] == 256 else 2]:
        raw = random_blocks(rng, name, max(OUT_SIZES), k, exact=True)
        w = reference_weight(raw, name, k)
        for n in OUT_SIZES:
            lin = QuantLinear(np.ascontiguousarray(raw[:n]), name, k, isa=isa)
            for m in DOT_ROWS:
                x = rng.integers(-126, 127, size=(m, k)).astype(np.float32)
                x.reshape(m, -1, 32)[:, :, 0] = 127  # max |x| = 127 in every block: d = 1
                assert lin.path(m) == "dot"
                want = (x.astype(np.float64) @ w[:n].T.astype(np.float64)).astype(np.float32)
                np.testing.assert_array_equal(lin(x), want, err_msg=f"{name} {isa} M={m} N={n}")


@pytest.mark.parametrize("name", NAMES)
def test_dot_path_within_the_activation_quantization_bound(isa, threads, name):
    rng = np.random.default_rng(3)
    for k in k_sizes(name):
        raw = random_blocks(rng, name, max(OUT_SIZES), k)
        w = reference_weight(raw, name, k)
        bias = rng.standard_normal(max(OUT_SIZES)).astype(np.float32)
        for n in OUT_SIZES:
            lin = QuantLinear(np.ascontiguousarray(raw[:n]), name, k, bias[:n], isa=isa)
            for m in DOT_ROWS:
                x = rng.standard_normal((m, k)).astype(np.float32)
                ref = x.astype(np.float64) @ w[:n].T.astype(np.float64) + bias[:n]
                bound = dot_bound(x, w[:n]) + EPS32 * np.abs(ref)
                assert_gemm_close(lin(x), ref, bound, f"{name} {isa} M={m} N={n} K={k}")


@pytest.mark.parametrize("name", NAMES)
def test_widened_path_within_the_gemm_bound(isa, threads, name):
    rng = np.random.default_rng(4)
    k = k_sizes(name)[1]
    raw = random_blocks(rng, name, 65, k)
    w = reference_weight(raw, name, k)
    lin = QuantLinear(raw, name, k, isa=isa)
    for m in WIDE_ROWS:
        x = rng.standard_normal((m, k)).astype(np.float32)
        assert lin.path(m) == "widened"
        ref, bound = gemm_reference(x, w.T)
        assert_gemm_close(lin(x), ref, bound, f"{name} {isa} M={m}")
    # batch_invariant: one row runs the many-row kernels too
    x1 = rng.standard_normal((1, k)).astype(np.float32)
    ref, bound = gemm_reference(x1, w.T)
    assert_gemm_close(lin(x1, batch_invariant=True), ref, bound, f"{name} batch_invariant")


@pytest.mark.parametrize("name", NAMES)
def test_residual_in_place_and_thread_counts_identical(isa, name):
    import pyengine

    rng = np.random.default_rng(5)
    k = k_sizes(name)[1]
    raw = random_blocks(rng, name, 129, k)
    bias = rng.standard_normal(129).astype(np.float32)
    lin = QuantLinear(raw, name, k, bias, isa=isa)
    previous = pyengine.get_num_threads()
    try:
        for m in (1, 3, 16, 40):
            x = rng.standard_normal((m, k)).astype(np.float32)
            res = rng.standard_normal((m, 129)).astype(np.float32)
            outs = []
            for t in (1, 2):
                pyengine.set_num_threads(t)
                y = res.copy()
                lin(x, out=y, residual=y)  # in-place residual add
                outs.append(y)
                want = lin(x) + res  # summed in another order: a few ulps of the terms
                scale = np.abs(lin(x)).max() + np.abs(res).max()
                np.testing.assert_allclose(y, want, rtol=0, atol=8 * EPS32 * scale)
            np.testing.assert_array_equal(outs[0], outs[1], err_msg=f"{name} M={m}")
    finally:
        pyengine.set_num_threads(previous)


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0"])
@pytest.mark.parametrize("k", [32, 64, 576])
def test_quantize_matches_ggml_reference_quantizer(name, k):
    rng = np.random.default_rng(k)
    w = (rng.standard_normal((17, k)) * 0.05).astype(np.float32)
    w[3] = 0.0  # an all-zero row: scale 0
    lin = QuantLinear.quantize(w, name)
    want = quantize(w, getattr(gguf.GGMLQuantizationType, name))
    got = QuantLinear(want, name, k).dequantize()
    np.testing.assert_array_equal(lin.dequantize(), got)


@pytest.mark.parametrize("k", [1, 7, 33, 65, 129])
def test_quantize_pads_awkward_in_features(k):
    """in_features that is not a multiple of 32: the last block is zero-padded."""
    rng = np.random.default_rng(k)
    w = rng.standard_normal((9, k)).astype(np.float32)
    # error per value: Q8_0 half a step (max|w| / 254); Q4_0 half a step (max|w| / 16) except
    # that the end opposite the largest value's sign reaches only -7 steps: max|w| / 8
    for name, tol in (("Q8_0", 1 / 254), ("Q4_0", 1 / 8)):
        lin = QuantLinear.quantize(w, name)
        deq = lin.dequantize()
        assert deq.shape == (9, k)
        blocks = np.pad(np.abs(w), ((0, 0), (0, -k % 32))).reshape(9, -1, 32).max(axis=2)
        step = np.repeat(blocks, 32, axis=1)[:, :k]
        # plus the fp16 rounding of the scale: |q| * |d - fp16(d)| <= max|w| * 2**-11
        assert (np.abs(deq - w) <= (tol + 2.0**-11) * step * 1.01 + 1e-7).all()
        x = rng.standard_normal((2, k)).astype(np.float32)
        for m in (2, 20):
            xm = np.resize(x, (m, k))
            ref, bound = gemm_reference(xm, deq.T)
            if lin.path(m) == "dot":
                bound = dot_bound(
                    np.pad(xm, ((0, 0), (0, -k % 32))), np.pad(deq, ((0, 0), (0, -k % 32)))
                )
            assert_gemm_close(lin(xm), ref, bound + EPS32 * np.abs(ref), f"{name} K={k} M={m}")


def test_bad_arguments_raise_clear_errors():
    raw = np.zeros((4, 20), np.uint8)
    with pytest.raises(ValueError, match="unknown quantized format Q3_X"):
        QuantLinear(raw, "Q3_X", 32)
    with pytest.raises(ValueError, match="whole blocks of 32"):
        QuantLinear(raw, "Q4_1", 48)
    with pytest.raises(ValueError, match=r"\[out_features, 40\]"):
        QuantLinear(raw, "Q4_1", 64)
    with pytest.raises(TypeError, match="uint8"):
        QuantLinear(raw.astype(np.int16), "Q4_1", 32)
    with pytest.raises(ValueError, match="Q8_0 and Q4_0, not Q4_K"):
        QuantLinear.quantize(np.zeros((2, 256), np.float32), "Q4_K")
    lin = QuantLinear(raw, "Q4_1", 32)
    with pytest.raises(ValueError, match="out of range for a table of 4 rows"):
        lin.embedding(np.array([4]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 32\)"):
        lin(np.zeros((2, 31), np.float32))


@pytest.mark.parametrize("name", NAMES)
def test_reads_stay_inside_the_caller_arrays(isa, name):
    """Blocks and activations placed right before an inaccessible page: a read past either
    array's end would fault."""
    from helpers import guarded

    rng = np.random.default_rng(6)
    k = k_sizes(name)[0]
    raw = guarded(random_blocks(rng, name, 13, k))
    lin = QuantLinear(raw, name, k, isa=isa)
    w = reference_weight(np.array(raw), name, k)
    for m in (1, 5, 20):
        x = guarded(rng.standard_normal((m, k)).astype(np.float32))
        ref, bound = gemm_reference(np.array(x), w.T)
        if lin.path(m) == "dot":
            bound = dot_bound(np.array(x), w) + EPS32 * np.abs(ref)
        assert_gemm_close(lin(x), ref, bound, f"{name} M={m}")
    for k_odd in (1, 33):  # Q8_0 from float32 with a partial last block of x
        q = QuantLinear.quantize(
            rng.standard_normal((5, k_odd)).astype(np.float32), "Q8_0", isa=isa
        )
        q(guarded(rng.standard_normal((2, k_odd)).astype(np.float32)))
