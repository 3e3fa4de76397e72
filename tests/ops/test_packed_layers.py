"""Layers over packed bytes they do not own (`from_packed`, what a pack file's memory map
feeds): the same outputs as the layer the bytes came from, on every level and thread count,
with read-only memory; wrong sizes, misaligned or mistyped buffers refused by name."""

from __future__ import annotations

import gc
import mmap

import numpy as np
import pytest

from pyengine import _C
from pyengine.ops import Bf16Linear, Linear, QuantLinear

SIZES = [(1, 1), (3, 7), (17, 33), (31, 65), (63, 129), (129, 31), (33, 256)]
QUANT = ["Q8_0", "Q4_0"]


def aligned_copy(data: np.ndarray) -> np.ndarray:
    """data copied to a fresh 64-byte aligned buffer (the original may then go)."""
    buf = np.zeros(data.nbytes + 64, np.uint8)
    start = (-buf.ctypes.data) % 64
    out = buf[start : start + data.nbytes]
    out[:] = data
    return out


def read_only_map(data: np.ndarray, tmp_path) -> np.ndarray:
    """data in a read-only shared file mapping (as a pack file is read)."""
    path = tmp_path / "blob"
    path.write_bytes(data.tobytes())
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, np.uint8)


def layers(rng, out_f, in_f, isa):
    w = rng.standard_normal((out_f, in_f)).astype(np.float32)
    b = rng.standard_normal(out_f).astype(np.float32)
    yield Linear(w, b, isa=isa)
    yield Bf16Linear(w, None, isa=isa)
    k = -(-in_f // 32) * 32
    wq = rng.standard_normal((out_f, k)).astype(np.float32)
    for fmt in QUANT:
        yield QuantLinear.quantize(wq, fmt, b, isa=isa)


def rebuild(layer, data, isa):
    if isinstance(layer, QuantLinear):
        return QuantLinear.from_packed(
            data, layer.format, layer.out_features, layer.in_features, layer.bias, isa=isa
        )
    return type(layer).from_packed(data, layer.out_features, layer.in_features, layer.bias, isa=isa)


@pytest.mark.parametrize("out_f,in_f", SIZES)
def test_from_packed_is_the_same_layer(out_f, in_f, isa, threads, tmp_path):
    rng = np.random.default_rng(out_f * 1000 + in_f)
    for layer in layers(rng, out_f, in_f, isa):
        packed = layer.packed_data()
        assert not packed.flags.writeable and packed.nbytes == layer.packed_nbytes
        twin = rebuild(layer, read_only_map(packed, tmp_path), isa)
        assert (twin.isa, twin.kernel) == (layer.isa, layer.kernel)
        for rows in (1, 3, 17, 70):
            x = rng.standard_normal((rows, layer.in_features)).astype(np.float32)
            np.testing.assert_array_equal(twin(x), layer(x), err_msg=repr(layer))
        if isinstance(layer, QuantLinear):
            np.testing.assert_array_equal(twin.dequantize(), layer.dequantize())


def test_the_bytes_live_as_long_as_the_layer(isa, tmp_path):
    """The layer holds the memory map: closing it fails (BufferError) while the layer lives,
    and the layer still computes after every other reference is gone."""
    rng = np.random.default_rng(1)
    layer = Linear(rng.standard_normal((40, 24)).astype(np.float32), isa=isa)
    x = rng.standard_normal((5, 24)).astype(np.float32)
    want = layer(x)
    path = tmp_path / "blob"
    path.write_bytes(layer.packed_data().tobytes())
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    twin = Linear.from_packed(np.frombuffer(mapped, np.uint8), 40, 24, isa=isa)
    del layer
    gc.collect()
    with pytest.raises(BufferError):
        mapped.close()
    np.testing.assert_array_equal(twin(x), want)
    del twin
    gc.collect()
    mapped.close()  # the last view went with the layer


def test_a_shape_whose_size_wraps_is_refused():
    """[2^62, 576] of Q8_0 takes 0 bytes modulo 2^64: a crafted header must not get a layer
    over an empty buffer (its first read would leave the mapping)."""
    empty = aligned_copy(np.zeros(64, np.uint8))[:0]
    with pytest.raises(ValueError, match="below 2"):
        QuantLinear.from_packed(empty, "Q8_0", 2**62, 576)
    with pytest.raises(ValueError, match="below 2"):
        Linear.from_packed(empty, 2**31, 2**31)
    with pytest.raises(ValueError, match="below 2"):
        Bf16Linear.from_packed(empty, 2**21, 2**20)


def test_bad_buffers_are_refused():
    rng = np.random.default_rng(2)
    layer = Linear(rng.standard_normal((33, 65)).astype(np.float32))
    data = aligned_copy(layer.packed_data())
    with pytest.raises(ValueError, match="takes"):
        Linear.from_packed(data, 33, 64)
    with pytest.raises(ValueError, match="takes"):
        Bf16Linear.from_packed(data, 33, 65)
    with pytest.raises(ValueError, match="64-byte boundary"):
        Linear.from_packed(aligned_copy(np.zeros(200, np.uint8))[1:], 3, 3)
    with pytest.raises(TypeError, match="uint8"):
        Linear.from_packed(data.view(np.float32), 33, 65)
    with pytest.raises(ValueError, match="positive"):
        Linear.from_packed(data, 0, 65)
    q = QuantLinear.quantize(rng.standard_normal((16, 64)).astype(np.float32), "Q4_0")
    qdata = aligned_copy(q.packed_data())
    with pytest.raises(ValueError, match="takes"):
        QuantLinear.from_packed(qdata, "Q8_0", 16, 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        QuantLinear.from_packed(qdata, "Q4_0", 16, 48)
    with pytest.raises(ValueError, match="unknown quantized format"):
        QuantLinear.from_packed(qdata, "Q3_Z", 16, 64)
    with pytest.raises(ValueError, match="bias"):
        Linear.from_packed(data, 33, 65, np.zeros(5, np.float32))
    # arguments of the wrong type (a pack file's header edited): TypeError, not a crash (a
    # failed pybind11 overload match on a keep_alive function crashed before)
    with pytest.raises(TypeError, match="format must be a str"):
        QuantLinear.from_packed(qdata, None, 16, 64)
    with pytest.raises(TypeError, match="out_features must be an int"):
        Linear.from_packed(data, 33.0, 65)
    with pytest.raises(TypeError, match="in_features must be an int"):
        QuantLinear.from_packed(qdata, "Q4_0", 16, True)
    with pytest.raises(ValueError, match="64-bit"):
        Linear.from_packed(data, 2**70, 65)


def test_layout_strings_name_each_levels_layout():
    """A pack file is run only where the layout string of its level is the same: levels whose
    panels differ have different strings."""
    layouts = {level: _C.packed_layout(level) for level in _C.supported_isa_levels()}
    for text in layouts.values():
        assert text.startswith("v") and "f32.nr=" in text and "x8=" in text
    assert _C.packed_layout() == layouts[_C.isa_level()]
    if {"generic", "avx2"} <= set(layouts):
        assert layouts["generic"] != layouts["avx2"]  # 8- vs 16-wide fp32 panels
