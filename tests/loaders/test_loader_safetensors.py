"""Hugging Face folders: single and sharded safetensors, dtypes, and broken files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from pyengine.loaders import (
    CheckpointError,
    TensorMap,
    UnsupportedModelError,
    check_tensors,
    config_from_hf,
    expected_tensors,
    load_safetensors_folder,
    load_weights,
)
from pyengine.loaders.safetensors_folder import read_header

TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 32,
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}


def random_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 tensors with every name and shape the config needs."""
    rng = np.random.default_rng(seed)
    specs = expected_tensors(config_from_hf(config))
    return {
        name: rng.standard_normal(spec.shape).astype(np.float32)
        for name, spec in specs.items()
        if spec.required
    }


def write_folder(folder, config: dict, tensors: dict[str, np.ndarray]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "model.safetensors"))


def write_raw(path, entries: dict, data: bytes, pad: bool = True) -> None:
    """A safetensors file from a hand-made header: entries name -> header object."""
    header = json.dumps(entries).encode()
    if pad:
        header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (truncation), as uint16."""
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def test_single_file_f32_round_trip_is_exact(tmp_path):
    weights = random_weights(TINY_LLAMA)
    write_folder(tmp_path, TINY_LLAMA, weights)
    config, tensors = load_safetensors_folder(tmp_path)
    assert config.architecture == "llama"
    assert isinstance(tensors, TensorMap)
    assert set(tensors) == set(weights)
    for name, expected in weights.items():
        got = tensors[name]
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)


def test_f16_is_widened_exactly(tmp_path):
    weights = {k: v.astype(np.float16) for k, v in random_weights(TINY_LLAMA).items()}
    write_folder(tmp_path, TINY_LLAMA, weights)
    _, tensors = load_safetensors_folder(tmp_path)
    for name, expected in weights.items():
        assert tensors.stored_dtype(name) == "F16"
        np.testing.assert_array_equal(tensors[name], expected.astype(np.float32))


def test_bf16_from_raw_bytes(tmp_path):
    weights = random_weights(TINY_LLAMA)
    entries, chunks, offset = {}, [], 0
    for name, value in weights.items():
        raw = to_bf16_bits(value).astype("<u2").tobytes()
        entries[name] = {
            "dtype": "BF16",
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    tmp_path.joinpath("config.json").write_text(json.dumps(TINY_LLAMA))
    write_raw(tmp_path / "model.safetensors", entries, b"".join(chunks))

    _, tensors = load_safetensors_folder(tmp_path)
    for name, value in weights.items():
        # bf16 keeps the top 16 bits of the float32
        expected = (value.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        assert tensors.stored_dtype(name) == "BF16"
        np.testing.assert_array_equal(tensors[name], expected)


def test_safetensors_numpy_cannot_read_bf16_itself(tmp_path):
    """Why the loader reads BF16 bytes itself: safetensors' numpy reader cannot, in a fresh
    interpreter. (In this one, a package that imports ml_dtypes, as onnx does, teaches numpy
    bfloat16 for the rest of the process: the check runs in its own interpreter.)"""
    import subprocess
    import sys

    write_raw(
        tmp_path / "x.safetensors",
        {"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
        b"\x80\x3f\x00\x40",
    )
    code = (
        "from safetensors import safe_open\n"
        f"f = safe_open({str(tmp_path / 'x.safetensors')!r}, framework='numpy')\n"
        "try:\n    f.get_tensor('a')\nexcept TypeError:\n    raise SystemExit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3


def _write_shards(folder, weights, with_index=True):
    names = sorted(weights)
    halves = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map = {}
    for i, part in enumerate(halves, start=1):
        file_name = f"model-{i:05d}-of-00002.safetensors"
        save_file({n: weights[n] for n in part}, str(folder / file_name))
        weight_map.update({n: file_name for n in part})
    if with_index:
        index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return weight_map


def test_sharded_with_index(tmp_path):
    weights = random_weights(TINY_LLAMA)
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    weight_map = _write_shards(tmp_path, weights)
    _, tensors = load_safetensors_folder(tmp_path)
    assert set(tensors) == set(weights)
    for name, expected in weights.items():
        assert tensors.file(name).name == weight_map[name]
        np.testing.assert_array_equal(tensors[name], expected)


def test_sharded_without_index(tmp_path):
    weights = random_weights(TINY_LLAMA)
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    _write_shards(tmp_path, weights, with_index=False)
    _, tensors = load_safetensors_folder(tmp_path)
    assert set(tensors) == set(weights)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete shard set"):
        load_safetensors_folder(tmp_path)


def test_index_naming_a_missing_shard(tmp_path):
    weights = random_weights(TINY_LLAMA)
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    _write_shards(tmp_path, weights)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        load_safetensors_folder(tmp_path)


def test_index_disagreeing_with_shards(tmp_path):
    weights = random_weights(TINY_LLAMA)
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    weight_map = _write_shards(tmp_path, weights)
    moved = "model.norm.weight"
    other = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    weight_map[moved] = (other - {weight_map[moved]}).pop()
    index = {"weight_map": weight_map}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=f"'{moved}'.*{weight_map[moved]}"):
        load_safetensors_folder(tmp_path)


def test_no_weights_in_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_safetensors_folder(tmp_path)


# ---- broken files: each error names the tensor and the file


def _good_file(tmp_path):
    weights = random_weights(TINY_LLAMA)
    write_folder(tmp_path, TINY_LLAMA, weights)
    return tmp_path / "model.safetensors", weights


def test_truncated_data(tmp_path):
    path, _ = _good_file(tmp_path)
    header = read_header(path)
    last = max(header.tensors, key=lambda n: header.tensors[n].end)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: truncated: tensor '{last}'"):
        load_safetensors_folder(tmp_path)


def test_truncated_header(tmp_path):
    path, _ = _good_file(tmp_path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated: header says"):
        load_safetensors_folder(tmp_path)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="too short"):
        load_safetensors_folder(tmp_path)


def test_offsets_disagreeing_with_shape(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    entries = {"model.norm.weight": {"dtype": "F32", "shape": [16], "data_offsets": [0, 60]}}
    write_raw(tmp_path / "model.safetensors", entries, bytes(60))
    with pytest.raises(CheckpointError, match=r"'model\.norm\.weight'.*span 60 bytes.*needs 64"):
        load_safetensors_folder(tmp_path)


def test_offsets_past_the_end(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    entries = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "model.norm.weight": {"dtype": "F32", "shape": [16], "data_offsets": [16, 80]},
    }
    write_raw(tmp_path / "model.safetensors", entries, bytes(32))
    with pytest.raises(CheckpointError, match=r"'model\.norm\.weight' data \[16, 80\) runs past"):
        load_safetensors_folder(tmp_path)


def test_overlapping_and_gapped_offsets(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    overlapping = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    write_raw(tmp_path / "model.safetensors", overlapping, bytes(24))
    with pytest.raises(CheckpointError, match="tensor 'b'.*overlaps tensor 'a'"):
        load_safetensors_folder(tmp_path)
    gapped = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]},
    }
    write_raw(tmp_path / "model.safetensors", gapped, bytes(40))
    with pytest.raises(CheckpointError, match="tensor 'b'.*contiguous"):
        load_safetensors_folder(tmp_path)


def test_header_not_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 8) + b"{garbage")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: header is not valid"):
        load_safetensors_folder(tmp_path)


def test_unknown_dtype(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    entries = {"model.norm.weight": {"dtype": "Q7", "shape": [16], "data_offsets": [0, 16]}}
    write_raw(tmp_path / "model.safetensors", entries, bytes(16))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: tensor 'model\.norm\.weight'.*unknown dtype"
    ):
        load_safetensors_folder(tmp_path)


def test_integer_weight_is_unsupported(tmp_path):
    weights = random_weights(TINY_LLAMA)
    weights["model.norm.weight"] = np.arange(16, dtype=np.int32)
    write_folder(tmp_path, TINY_LLAMA, weights)
    with pytest.raises(UnsupportedModelError, match=r"'model\.norm\.weight' has dtype I32"):
        load_safetensors_folder(tmp_path)


def test_missing_tensor(tmp_path):
    weights = random_weights(TINY_LLAMA)
    del weights["model.layers.1.mlp.up_proj.weight"]
    write_folder(tmp_path, TINY_LLAMA, weights)
    with pytest.raises(CheckpointError, match=r"missing tensor.*'model\.layers\.1\.mlp\.up_proj"):
        load_safetensors_folder(tmp_path)


def test_wrong_shape(tmp_path):
    weights = random_weights(TINY_LLAMA)
    weights["model.layers.0.self_attn.k_proj.weight"] = np.zeros((16, 16), np.float32)
    write_folder(tmp_path, TINY_LLAMA, weights)
    with pytest.raises(
        CheckpointError,
        match=r"'model\.layers\.0\.self_attn\.k_proj\.weight' \(file .*model\.safetensors\) "
        r"has shape \[16, 16\].*needs \[8, 16\]",
    ):
        load_safetensors_folder(tmp_path)


def test_tied_lm_head_is_optional_untied_required(tmp_path):
    weights = random_weights(TINY_LLAMA)
    del weights["lm_head.weight"]
    config = config_from_hf(dict(TINY_LLAMA, tie_word_embeddings=True))
    check_tensors(config, weights)  # fine
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        check_tensors(config_from_hf(TINY_LLAMA), weights, source="dict")


def test_check_false_skips_validation(tmp_path):
    weights = random_weights(TINY_LLAMA)
    del weights["model.norm.weight"]
    write_folder(tmp_path, TINY_LLAMA, weights)
    _, tensors = load_safetensors_folder(tmp_path, check=False)
    assert "model.norm.weight" not in tensors


def test_lazy_map_reads_shapes_without_data(tmp_path):
    weights = random_weights(TINY_LLAMA)
    write_folder(tmp_path, TINY_LLAMA, weights)
    _, tensors = load_safetensors_folder(tmp_path)
    name = "model.embed_tokens.weight"
    assert tensors.shape(name) == (32, 16)
    assert repr(tensors).endswith("0 loaded)")
    first = tensors[name]
    assert tensors[name] is first  # converted once, then kept
    tensors.release(name)
    np.testing.assert_array_equal(tensors[name], first)
    with pytest.raises(KeyError):
        tensors["nope"]


# ---- names of task-head checkpoints


def test_gpt2_prefix_and_buffers(tmp_path):
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": 40,
        "n_embd": 16,
        "n_layer": 1,
        "n_head": 2,
        "n_positions": 8,
    }
    weights = random_weights(config)
    stored = {"transformer." + k: v for k, v in weights.items()}
    stored["transformer.h.0.attn.bias"] = np.ones((1, 1, 8, 8), np.float32)  # causal mask
    write_folder(tmp_path, config, stored)
    loaded = load_weights(tmp_path)
    assert loaded.config.architecture == "gpt2"
    assert set(loaded.tensors) == set(weights)
    # Conv1D layout kept: [in_features, out_features]
    assert loaded.tensors.shape("h.0.attn.c_attn.weight") == (16, 48)
    np.testing.assert_array_equal(loaded.tensors["wte.weight"], weights["wte.weight"])


def test_bert_prefix_gamma_beta_and_position_ids(tmp_path):
    config = {
        "architectures": ["BertForMaskedLM"],
        "vocab_size": 30,
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 12,
        "type_vocab_size": 2,
    }
    weights = random_weights(config)
    stored = {}
    for name, value in weights.items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma")
        stored["bert." + name.replace("LayerNorm.bias", "LayerNorm.beta")] = value
    stored["bert.embeddings.position_ids"] = np.arange(12, dtype=np.int64)[None]
    stored["cls.predictions.bias"] = np.zeros(30, np.float32)
    write_folder(tmp_path, config, stored)
    _, tensors = load_safetensors_folder(tmp_path)
    assert set(tensors) == set(weights) | {"cls.predictions.bias"}
    np.testing.assert_array_equal(
        tensors["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.weight"]
    )


def test_a_tokenizer_that_fails_at_its_first_encode_is_refused(tiny_llama_folder, tmp_path):
    """A post-processor naming a special token the file lacks loads in `tokenizers` but panics
    at the first encode (found by the tokenizer-file fuzzer): refused at load, by name."""
    import json
    import shutil

    import pyengine
    from pyengine.loaders import CheckpointError

    folder = tmp_path / "model"
    shutil.copytree(tiny_llama_folder, folder)
    doc = json.loads((folder / "tokenizer.json").read_text())
    post = doc.get("post_processor") or {}
    if post.get("type") != "TemplateProcessing":
        doc["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<missing>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {},
        }  # fmt: skip
    else:
        post["special_tokens"] = {}
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="tokenizer fails on text") as info:
        pyengine.load(folder)
    assert "tokenizer.json" in str(info.value)
