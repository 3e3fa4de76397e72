"""Pack files (`pyengine pack`): a model packed once runs from a read-only memory map with the
same results as the model loaded from its source, and a stale, foreign or damaged file is
refused with an error naming the file."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import numpy as np
import pytest
from test_new_families import AS_GGUF, convert, make_hf

import pyengine
from pyengine import _C
from pyengine.loaders import LoaderError
from pyengine.loaders.pack_file import MAGIC, PackFile, PackFileError
from pyengine.pack import load_pack, pack, verify

DTYPES = ("float32", "bfloat16", "int8", "q4")


def same_model(a, b, ids) -> None:
    """Bit-identical logits and greedy tokens: the same kernels over the same bytes."""
    np.testing.assert_array_equal(a.forward(ids), b.forward(ids))
    ga = a.generate(ids[0], max_new_tokens=8)
    gb = b.generate(ids[0], max_new_tokens=8)
    np.testing.assert_array_equal(ga, gb)


def same_config(a, b) -> bool:
    """Equal configs, comparing per-layer windows by value (LayerWindows may hold a function,
    made anew by each parse)."""

    def plain(cfg):
        opts = cfg.options
        if opts is not None and hasattr(opts, "layer_windows"):
            opts = dataclasses.replace(opts, layer_windows=tuple(opts.layer_windows))
        return dataclasses.replace(cfg, options=opts)

    return plain(a) == plain(b)


def mapped_range(model) -> tuple[int, int]:
    pf = model._packer.pack
    start = np.frombuffer(pf._map, np.uint8).ctypes.data
    return start, start + pf.size


def assert_runs_from_the_map(model) -> None:
    """Every layer's weights and every array lie inside the pack file's mapping: nothing was
    copied (so processes share the page cache's one copy)."""
    lo, hi = mapped_range(model)
    layers = list(model._packer._layers.values())
    arrays = list(model._packer._arrays.values())
    assert layers and arrays
    for layer in layers:
        p = layer.packed_data().ctypes.data
        assert lo <= p and p + layer.packed_nbytes <= hi
    for a in arrays:
        assert not a.flags.writeable and lo <= a.ctypes.data < hi


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_family_and_dtype_round_trips(hf_checkpoint, dtype, tmp_path):
    name, folder, _ = hf_checkpoint
    path = tmp_path / f"{name}-{dtype}.pack"
    summary = pack(folder, path, dtype=dtype)
    assert summary["isa"] == _C.isa_level() and summary["layers"] > 0
    packed = pyengine.load(path)
    source = pyengine.load(folder, dtype=dtype)
    assert same_config(packed.config, source.config)
    assert packed.weight_formats == source.weight_formats
    assert packed.matrix_weight_bytes == source.matrix_weight_bytes
    assert packed.layer_windows == source.layer_windows
    assert_runs_from_the_map(packed)
    ids = np.random.default_rng(5).integers(0, packed.vocab_size, (2, 37))
    same_model(packed, source, ids)


def test_gguf_blocks_round_trip(tmp_path):
    """A GGUF whose projections are Q8_0 blocks (run as stored) and whose norms are shifted."""
    hf = make_hf("gemma3", **AS_GGUF["gemma3"])
    gguf_path = tmp_path / "gemma3.gguf"
    convert(hf, "gemma3", gguf_path, quantize=("attn_q.weight", "ffn_up.weight"), vocabulary=True)
    pack(gguf_path, tmp_path / "g.pack")
    packed, source = pyengine.load(tmp_path / "g.pack"), pyengine.load(gguf_path)
    assert packed.weight_formats == source.weight_formats and "Q8_0" in packed.weight_formats
    same_model(packed, source, np.random.default_rng(6).integers(0, 97, (1, 80)))
    assert packed.tokenizer.encode("a+b=c").ids == source.tokenizer.encode("a+b=c").ids


def test_smollm2_gguf(smollm2_path, tmp_path):
    """The real Q4_1 file: tokenizer, chat template and stop ids come back from the pack."""
    path = tmp_path / "smollm2.pack"
    info = pack(smollm2_path, path)
    assert info["source"]["bytes"] == smollm2_path.stat().st_size
    packed, source = pyengine.load(path), pyengine.load(smollm2_path)
    assert packed.weight_formats == source.weight_formats == {"Q4_1": 180, "Q8_0": 1}
    assert_runs_from_the_map(packed)
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    want = source.generate(messages=chat, max_new_tokens=16)
    assert packed.generate(messages=chat, max_new_tokens=16) == want
    assert packed.eos_token_ids() == source.eos_token_ids()


def test_minilm_encoder(minilm_path, tmp_path):
    pack(minilm_path, tmp_path / "minilm.pack", dtype="bfloat16")
    packed = pyengine.load(tmp_path / "minilm.pack")
    source = pyengine.load(minilm_path, dtype="bfloat16")
    texts = ["a pack file is mapped read-only", "short", "x " * 60]
    np.testing.assert_array_equal(packed.encode(texts), source.encode(texts))
    assert packed.max_seq_length == source.max_seq_length and packed.normalize


# ---- refusals ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    hf = make_hf("qwen3")
    hf.save_pretrained(folder)
    path = folder / "tiny.pack"
    pack(folder, path, dtype="q4")
    return path


def rewrite_header(src, dst, change) -> None:
    """dst = src with its JSON header changed by change(header) (same blobs, same offsets)."""
    data = bytearray(src.read_bytes())
    room = struct.unpack_from("<Q", data, 16)[0]
    header = json.loads(data[24 : 24 + room])
    change(header)
    text = json.dumps(header, separators=(",", ":")).encode().ljust(room)
    assert len(text) == room
    data[24 : 24 + room] = text
    struct.pack_into("<I", data, 12, zlib.crc32(text))
    dst.write_bytes(bytes(data))


def entry_method(h, name):
    h["log"][0][0] = name


def swap_results(h):
    """The results of the first two linear_from entries exchanged (q and k projections)."""
    first, second = [e for e in h["log"] if e[0] == "linear_from"][:2]
    first[2], second[2] = second[2], first[2]


CHANGES = {
    "pack format": (lambda h: h.update(pyengine_pack=99), "pack format 99"),
    "layout": (lambda h: h.update(layout="v0 f32.nr=8"), "layout 'v0 f32.nr=8'.*pack the model"),
    "unknown level": (lambda h: h.update(isa="sse9"), "sse9"),
    "other model code": (lambda h: entry_method(h, "linear"), "other model code"),
    "missing entry": (lambda h: h["log"].pop(), "other model code"),
    "blob index": (lambda h: h["layers"][0].update(data=10**6), "blob 1000000"),
    "blob place": (lambda h: h["blobs"][0].update(offset=h["blobs"][0]["offset"] + 1), "blob 0"),
    "blob size": (lambda h: h["blobs"][1].update(nbytes=10**12), "outside the file"),
    "huge layer": (lambda h: h["layers"][0].update(out=2**62), "layer 0.*below 2"),
    "format type": (lambda h: h["layers"][0].update(format=None), "layer 0.*format"),
    "result kind": (lambda h: h["log"][-1].__setitem__(2, None), "wrong kind"),
    "swapped layers": (lambda h: swap_results(h), "do not fit"),
    "array index": (lambda h: h["log"][0].__setitem__(2, {"array": [0]}), "array"),
    "other code": (lambda h: h.update(code="0123456789abcdef"), "other pyengine code"),
    "format flag": (lambda h: h.update(pyengine_pack=True), "pack format True"),
    "empty level": (lambda h: h.update(isa=""), "ISA level ''"),
    "dtype type": (lambda h: h.update(dtype=[]), "names dtype"),
    "extras type": (lambda h: h["extras"].update(special_tokens=[1]), "special_tokens"),
    "tokenizer config": (lambda h: h["extras"].update(tokenizer_config=5), "tokenizer_config"),
    "config tensors": (
        lambda h: h["config_inputs"].update(kind="gguf", metadata={}, shapes={"a": []}),
        "no config",
    ),
    "layer shape": (lambda h: h["layers"][0].update(out=h["layers"][0]["out"] + 8), "layer 0"),
    "layer level": (lambda h: h["layers"][0].update(isa="generic"), "layer 0 is packed for"),
    "array shape": (lambda h: h["arrays"][0].update(shape=[3, 5]), "array 0"),
    "config": (lambda h: h["config_inputs"]["config"].pop("hidden_size"), "hidden_size"),
    "no config": (lambda h: h.pop("config_inputs"), "no config"),
    "tokenizer": (lambda h: h.update(tokenizer="{not json"), "tokenizer"),
}


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_stale_or_edited_files_are_refused(small_pack, tmp_path, what):
    change, match = CHANGES[what]
    bad = tmp_path / "bad.pack"
    rewrite_header(small_pack, bad, change)
    with pytest.raises(LoaderError, match=match) as info:
        pyengine.load(bad)
    assert str(bad) in str(info.value)


def test_cpu_without_the_packed_level_is_refused(small_pack, monkeypatch):
    level = _C.isa_level()
    if level == "generic":
        pytest.skip("the generic level needs no CPU feature")
    bare = {k: False for k in _C.cpu_features()}
    monkeypatch.setattr(_C, "cpu_features", lambda: bare)
    with pytest.raises(PackFileError, match=f"packed for the {level} kernels.*lacks"):
        load_pack(small_pack)


def test_truncated_and_foreign_files(small_pack, tmp_path):
    data = small_pack.read_bytes()
    reasons = {4: "no pack magic", 20: "no pack magic", 100: "header", len(data) // 2: "blob",
               len(data) - 1: "blob"}  # fmt: skip
    for cut, reason in reasons.items():
        bad = tmp_path / f"cut{cut}.pack"
        bad.write_bytes(data[:cut])
        with pytest.raises(LoaderError, match=reason) as info:
            pyengine.load(bad) if cut >= len(MAGIC) else load_pack(bad)
        assert str(bad) in str(info.value)
    other = tmp_path / "v2.pack"
    other.write_bytes(data[:8] + struct.pack("<I", 2) + data[12:])
    with pytest.raises(PackFileError, match="container version 2"):
        pyengine.load(other)
    edited = tmp_path / "edited.pack"
    edited.write_bytes(data[:40] + b"\xff" + data[41:])
    with pytest.raises(PackFileError, match="checksum"):
        PackFile(edited)


def test_damaged_weights_are_found_by_verify(small_pack, tmp_path, capsys):
    """Weight bytes are not read at load; `pyengine pack --verify` checks each blob's CRC-32."""
    from pyengine.cli import main

    assert main(["pack", "--verify", str(small_pack)]) == 0
    data = bytearray(small_pack.read_bytes())
    data[-10] ^= 0x40
    bad = tmp_path / "damaged.pack"
    bad.write_bytes(bytes(data))
    pyengine.load(bad)  # loads: the header is intact
    with pytest.raises(PackFileError, match="damaged"):
        verify(bad)
    capsys.readouterr()
    assert main(["pack", "--verify", str(bad)]) == 2
    assert "CRC-32" in capsys.readouterr().err


def test_dtype_and_debug_requests(small_pack):
    assert pyengine.load(small_pack, dtype="q4").dtype == "q4"
    with pytest.raises(ValueError, match="packed with dtype 'q4'"):
        pyengine.load(small_pack, dtype="float32")
    with pytest.raises(ValueError, match="debug mode"):
        pyengine.load(small_pack, debug=True)


def test_pack_cli(small_pack, tmp_path, capsys):
    from pyengine.cli import main

    folder = small_pack.parent
    out = tmp_path / "cli.pack"
    assert main(["pack", str(folder), "--dtype", "int8", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    model = pyengine.load(out)
    assert model.dtype == "int8"
    assert model.weight_formats == pyengine.load(folder, dtype="int8").weight_formats
    assert main(["pack", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "pyengine: error:" in capsys.readouterr().err
