"""GGUF files written here with gguf.GGUFWriter: dequantization, names, the Q/K permutation,
the rebuilt tokenizer, and broken files."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from pyengine.loaders import (
    CheckpointError,
    UnsupportedModelError,
    load_gguf,
    load_weights,
    permute_qk,
    unpermute_qk,
)

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTER, LAYERS = 64, 4, 2, 16, 96, 2


# ---- independent numpy references for the block formats (ggml-quants.c dequantize_row_*)


def ref_q8_0(raw: np.ndarray) -> np.ndarray:
    """Block of 34 bytes: f16 scale d, 32 int8 q; x = d * q."""
    blocks = raw.reshape(-1, 34)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(raw.shape[0], -1)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    # low nibbles are elements 0..15 of the block, high nibbles 16..31
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)


def ref_q4_0(raw: np.ndarray) -> np.ndarray:
    """Block of 18 bytes: f16 d, 16 bytes of nibbles; x = d * (q - 8)."""
    blocks = raw.reshape(-1, 18)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    return (d * (_nibbles(blocks[:, 2:]) - 8)).reshape(raw.shape[0], -1)


def ref_q4_1(raw: np.ndarray) -> np.ndarray:
    """Block of 20 bytes: f16 d, f16 min m, 16 bytes of nibbles; x = d * q + m."""
    blocks = raw.reshape(-1, 20)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    m = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
    return (d * _nibbles(blocks[:, 4:]) + m).reshape(raw.shape[0], -1)


def ref_bf16(raw: np.ndarray) -> np.ndarray:
    return (raw.copy().view("<u2").astype(np.uint32) << 16).view(np.float32)


# ---- a tiny byte-level BPE vocabulary


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


SPECIALS = ["<|bos|>", "<|eos|>", "<|unk|>"]
MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "1 2"]
USER_DEFINED = ["<tool>"]


def tiny_vocab() -> tuple[list[str], list[int]]:
    tokens = list(SPECIALS) + list(bytes_to_unicode().values())
    tokens += [m.replace(" ", "") for m in MERGES] + USER_DEFINED
    types = [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS) - 1) + [4]
    return tokens, types


def tokenizer_metadata(pre: str = "gpt-2", add_bos: bool | None = True, **extra) -> dict:
    """Metadata of the tiny vocabulary; add_bos=None leaves the key out."""
    tokens, types = tiny_vocab()
    meta = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": MERGES,
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 1,
        "tokenizer.ggml.unknown_token_id": 2,
        "tokenizer.ggml.add_bos_token": add_bos,
        "tokenizer.chat_template": "{{ messages }}",
        **extra,
    }
    return {k: v for k, v in meta.items() if v is not None}


VOCAB = len(tiny_vocab()[0])


# ---- writing files the way convert_hf_to_gguf.py does


def hf_weights(seed: int = 0, tied: bool = True, bias: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    q_rows, kv_rows = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,)}
    if not tied:
        shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "input_layernorm.weight": (HIDDEN,),
                p + "self_attn.q_proj.weight": (q_rows, HIDDEN),
                p + "self_attn.k_proj.weight": (kv_rows, HIDDEN),
                p + "self_attn.v_proj.weight": (kv_rows, HIDDEN),
                p + "self_attn.o_proj.weight": (HIDDEN, q_rows),
                p + "post_attention_layernorm.weight": (HIDDEN,),
                p + "mlp.gate_proj.weight": (INTER, HIDDEN),
                p + "mlp.up_proj.weight": (INTER, HIDDEN),
                p + "mlp.down_proj.weight": (HIDDEN, INTER),
            }
        )
        if bias:
            shapes[p + "self_attn.q_proj.bias"] = (q_rows,)
            shapes[p + "self_attn.k_proj.bias"] = (kv_rows,)
            shapes[p + "self_attn.v_proj.bias"] = (kv_rows,)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


GGUF_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GGUF_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def to_gguf(name: str, value: np.ndarray, arch: str) -> tuple[str, np.ndarray]:
    """The converter's rename, and its q/k permutation for llama."""
    if name in GGUF_GLOBAL:
        return GGUF_GLOBAL[name], value
    _, _, layer, rest = name.split(".", 3)
    if arch == "llama" and rest.startswith("self_attn.q_proj"):
        value = permute_qk(value, HEADS)
    elif arch == "llama" and rest.startswith("self_attn.k_proj"):
        value = permute_qk(value, KV_HEADS)
    return f"blk.{layer}.{GGUF_LAYER[rest]}", value


def write_gguf(path, arch: str, metadata: dict, tensors: dict) -> dict:
    """Write a GGUF. tensors: GGUF name -> (float32 array, type to store it in, or None to
    store the array as it is; or uint8 blocks and their type). Returns GGUF name -> the stored
    array (bytes for block types)."""
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in metadata.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)
    stored = {}
    for name, (value, kind) in tensors.items():
        if kind is None:  # as given, the writer picks the type from the numpy dtype
            data = value
            writer.add_tensor(name, data)
        elif kind == Q.F32:
            data = value.astype(np.float32)
            writer.add_tensor(name, data)
        elif kind == Q.F16:
            data = value.astype(np.float16)
            writer.add_tensor(name, data)
        elif value.dtype == np.uint8:  # stored blocks, given as they are
            data = value
            writer.add_tensor(name, data, raw_dtype=kind)
        else:
            data = gguf.quants.quantize(value, kind)
            writer.add_tensor(name, data, raw_dtype=kind)
        stored[name] = data
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


def model_metadata(arch: str = "llama", **extra) -> dict:
    meta = {
        f"{arch}.block_count": LAYERS,
        f"{arch}.context_length": 128,
        f"{arch}.embedding_length": HIDDEN,
        f"{arch}.feed_forward_length": INTER,
        f"{arch}.attention.head_count": HEADS,
        f"{arch}.attention.head_count_kv": KV_HEADS,
        f"{arch}.rope.freq_base": 10000.0,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-5,
        f"{arch}.rope.dimension_count": HEAD_DIM,
    }
    meta.update(tokenizer_metadata())
    meta.update(extra)
    return meta


def write_model(path, weights, arch="llama", kinds=None, metadata=None) -> dict:
    kinds = kinds or {}
    tensors = {}
    for name, value in weights.items():
        gguf_name, value = to_gguf(name, value, arch)
        tensors[gguf_name] = (value, kinds.get(name, Q.F32))
    return write_gguf(path, arch, metadata or model_metadata(arch), tensors)


# ---- the permutation


def test_permutation_round_trip():
    rng = np.random.default_rng(1)
    for heads, rows in ((HEADS, HEADS * HEAD_DIM), (KV_HEADS, KV_HEADS * HEAD_DIM), (3, 3 * 64)):
        w = rng.standard_normal((rows, 40)).astype(np.float32)
        permuted = permute_qk(w, heads)
        assert not np.array_equal(permuted, w)
        np.testing.assert_array_equal(unpermute_qk(permuted, heads), w)
        np.testing.assert_array_equal(permute_qk(unpermute_qk(w, heads), heads), w)
        bias = rng.standard_normal(rows).astype(np.float32)
        np.testing.assert_array_equal(unpermute_qk(permute_qk(bias, heads), heads), bias)


def test_permutation_interleaves_the_halves_of_each_head():
    # one head of width 8: GGUF row 2i is HF row i, row 2i + 1 is HF row i + 4
    rows = np.arange(16).reshape(16, 1)
    gguf_rows = permute_qk(rows, 2)[:, 0]
    assert gguf_rows.tolist() == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]
    with pytest.raises(CheckpointError, match="cannot be split into 3 heads"):
        unpermute_qk(rows, 3)


# ---- whole files


def test_f32_llama_round_trip_is_exact(tmp_path):
    weights = hf_weights(tied=False)
    write_model(tmp_path / "m.gguf", weights)
    config, tensors, tokenizer, extras = load_gguf(tmp_path / "m.gguf")
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == (HEADS, KV_HEADS, HEAD_DIM)
    assert not config.tie_word_embeddings
    assert set(tensors) == set(weights)
    for name, expected in weights.items():
        np.testing.assert_array_equal(tensors[name], expected, err_msg=name)
    assert extras["format"] == "gguf"
    assert extras["gguf_names"]["model.layers.1.self_attn.k_proj.weight"] == "blk.1.attn_k.weight"
    assert extras["chat_template"] == "{{ messages }}"


def test_tied_embeddings_have_no_lm_head(tmp_path):
    weights = hf_weights(tied=True)
    write_model(tmp_path / "m.gguf", weights)
    loaded = load_weights(tmp_path / "m.gguf")
    assert loaded.config.tie_word_embeddings
    assert "lm_head.weight" not in loaded.tensors
    assert loaded.config.vocab_size == VOCAB


REFERENCES = {Q.Q8_0: ref_q8_0, Q.Q4_0: ref_q4_0, Q.Q4_1: ref_q4_1, Q.BF16: ref_bf16}


@pytest.mark.parametrize("kind", [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1], ids=lambda k: k.name)
def test_dequantization_matches_numpy_reference(tmp_path, kind):
    weights = hf_weights()
    quantized = [
        "model.embed_tokens.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_proj.weight",
    ]
    stored = write_model(tmp_path / "m.gguf", weights, kinds=dict.fromkeys(quantized, kind))
    _, tensors, _, extras = load_gguf(tmp_path / "m.gguf", with_tokenizer=False)
    for name in quantized:
        gguf_name = extras["gguf_names"][name]
        raw = stored[gguf_name]
        if kind == Q.F16:
            expected = raw.astype(np.float32)
        else:
            expected = REFERENCES[kind](raw).reshape(raw.shape[0], -1)
        if name.endswith("q_proj.weight"):
            expected = unpermute_qk(expected, HEADS)
        elif name.endswith("k_proj.weight"):
            expected = unpermute_qk(expected, KV_HEADS)
        assert extras["tensor_types"][name] == kind.name
        np.testing.assert_array_equal(tensors[name], expected, err_msg=name)


# error bound of each format against the float32 it was made from, per 32-value block:
# amax = largest |x|, span = max - min
BOUNDS = {
    Q.F16: lambda amax, span: amax * 2.0**-10,
    Q.BF16: lambda amax, span: amax * 2.0**-7,
    Q.Q8_0: lambda amax, span: amax / 127,
    Q.Q4_0: lambda amax, span: amax / 8,  # +amax clips to 7/8 of the scale
    Q.Q4_1: lambda amax, span: span / 15,
    Q.Q5_0: lambda amax, span: amax / 16,
    Q.Q5_1: lambda amax, span: span / 31,
}


@pytest.mark.parametrize("kind", list(BOUNDS), ids=lambda k: k.name)
def test_dequantized_values_are_close_to_the_originals(tmp_path, kind):
    weights = hf_weights()
    names = ["model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.q_proj.weight"]
    write_model(tmp_path / "m.gguf", weights, kinds=dict.fromkeys(names, kind))
    _, tensors, _, _ = load_gguf(tmp_path / "m.gguf", with_tokenizer=False)
    for name in names:
        original = weights[name].reshape(-1, 32)
        got = tensors[name].reshape(-1, 32)
        amax = np.abs(original).max(axis=1, keepdims=True)
        span = original.max(axis=1, keepdims=True) - original.min(axis=1, keepdims=True)
        # the f16 scales round too: allow 0.1% on top of the format's own step
        bound = BOUNDS[kind](amax, span) * 1.001 + 1e-6
        assert np.all(np.abs(got - original) <= bound), (name, kind.name)


def test_qwen2_biases_are_not_permuted(tmp_path):
    weights = hf_weights(bias=True)
    write_model(tmp_path / "m.gguf", weights, arch="qwen2")
    config, tensors, _, _ = load_gguf(tmp_path / "m.gguf")
    assert config.architecture == "qwen2"
    assert config.attention_bias and not config.attention_out_bias
    for name, expected in weights.items():
        np.testing.assert_array_equal(tensors[name], expected, err_msg=name)


def test_llama_q_k_biases_are_unpermuted(tmp_path):
    weights = hf_weights(bias=True)
    write_model(tmp_path / "m.gguf", weights, arch="llama")
    _, tensors, _, _ = load_gguf(tmp_path / "m.gguf")
    for name in ("model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias"):
        np.testing.assert_array_equal(tensors[name], weights[name])


def test_rope_freqs_tensor_becomes_freq_factors(tmp_path):
    weights = hf_weights()
    factors = np.linspace(1.0, 8.0, HEAD_DIM // 2).astype(np.float32)
    tensors = dict(to_gguf(n, v, "llama") for n, v in weights.items())
    tensors = {n: (v, Q.F32) for n, v in tensors.items()}
    tensors["rope_freqs.weight"] = (factors, Q.F32)
    write_gguf(tmp_path / "m.gguf", "llama", model_metadata(), tensors)
    loaded = load_weights(tmp_path / "m.gguf")
    assert loaded.config.rope_scaling.type == "freq_factors"
    np.testing.assert_array_equal(loaded.config.rope_scaling.freq_factors, factors)
    assert "rope_freqs.weight" not in loaded.tensors


# ---- the rebuilt tokenizer


def test_tokenizer_specials_merges_and_bos(tmp_path):
    write_model(tmp_path / "m.gguf", hf_weights())
    loaded = load_weights(tmp_path / "m.gguf")
    tok = loaded.tokenizer
    tokens, _ = tiny_vocab()
    ids = {t: i for i, t in enumerate(tokens)}
    assert tok.get_vocab_size() == len(tokens)
    assert tok.encode("hello").ids == [ids["<|bos|>"], ids["hello"]]
    assert tok.encode("hello world").ids[:3] == [ids["<|bos|>"], ids["hello"], ids["Ġwo"]]
    # control and user-defined tokens are matched whole
    assert tok.encode("hello<|eos|>").ids == [ids["<|bos|>"], ids["hello"], ids["<|eos|>"]]
    assert tok.encode("<tool>he", add_special_tokens=False).ids == [ids["<tool>"], ids["he"]]
    assert loaded.extras["add_bos_token"] is True
    assert loaded.extras["special_tokens"] == {
        "bos": "<|bos|>",
        "eos": "<|eos|>",
        "unk": "<|unk|>",
        "pad": None,
    }
    for text in ["hello world", "héllo wörld 🤗\n\n\t  x", "a  b   c", "日本語"]:
        assert tok.decode(tok.encode(text).ids) == text


def test_pre_tokenizer_follows_tokenizer_ggml_pre(tmp_path):
    tokens, _ = tiny_vocab()
    ids = {t: i for i, t in enumerate(tokens)}
    for pre, expected in (("gpt-2", [ids["12"]]), ("smollm", [ids["1"], ids["2"]])):
        path = tmp_path / f"{pre}.gguf"
        meta = model_metadata(**tokenizer_metadata(pre=pre, add_bos=False))
        write_model(path, hf_weights(), metadata=meta)
        assert load_weights(path).tokenizer.encode("12").ids == expected, pre


def test_bos_eos_templates_and_llama3_default(tmp_path):
    tokens, _ = tiny_vocab()
    ids = {t: i for i, t in enumerate(tokens)}
    bos, eos = ids["<|bos|>"], ids["<|eos|>"]
    meta = model_metadata(**tokenizer_metadata(**{"tokenizer.ggml.add_eos_token": True}))
    write_model(tmp_path / "a.gguf", hf_weights(), metadata=meta)
    tok = load_weights(tmp_path / "a.gguf").tokenizer
    assert tok.encode("hello").ids == [bos, ids["hello"], eos]
    pair = tok.encode("he", "ll")
    assert pair.ids == [bos, ids["he"], eos, bos, ids["ll"], eos]
    assert pair.type_ids == [0, 0, 0, 1, 1, 1]
    assert tok.encode("hello", add_special_tokens=False).ids == [ids["hello"]]

    # llama.cpp adds BOS for the Llama 3 pre-tokenizer group when the file does not say
    meta = model_metadata(**tokenizer_metadata(pre="llama-bpe", add_bos=None))
    write_model(tmp_path / "b.gguf", hf_weights(), metadata=meta)
    loaded = load_weights(tmp_path / "b.gguf")
    assert loaded.extras["add_bos_token"] is True
    assert loaded.tokenizer.encode("hello").ids == [bos, ids["hello"]]


def test_unsupported_tokenizers_are_named(tmp_path):
    meta = model_metadata(**{"tokenizer.ggml.pre": "some-new-pre"})
    write_model(tmp_path / "a.gguf", hf_weights(), metadata=meta)
    with pytest.raises(UnsupportedModelError, match="'some-new-pre'"):
        load_weights(tmp_path / "a.gguf")
    assert load_weights(tmp_path / "a.gguf", with_tokenizer=False).tokenizer is None

    meta = model_metadata(**{"tokenizer.ggml.model": "t5"})
    write_model(tmp_path / "b.gguf", hf_weights(), metadata=meta)
    with pytest.raises(UnsupportedModelError, match="tokenizer.ggml.model 't5'"):
        load_weights(tmp_path / "b.gguf")


# ---- broken or unsupported files


def test_truncated_file(tmp_path):
    path = tmp_path / "m.gguf"
    write_model(path, hf_weights())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"m\.gguf: not a readable GGUF"):
        load_gguf(path)
    path.write_bytes(b"GGUF" + bytes(10))
    with pytest.raises(CheckpointError, match=r"m\.gguf"):
        load_gguf(path)
    path.write_bytes(b"not a gguf at all")
    with pytest.raises(CheckpointError, match=r"m\.gguf"):
        load_gguf(path)


def test_unknown_tensor_is_named(tmp_path):
    tensors = {n: (v, Q.F32) for n, v in (to_gguf(*kv, "llama") for kv in hf_weights().items())}
    tensors["blk.0.ffn_gate_inp.weight"] = (np.zeros((8, HIDDEN), np.float32), Q.F32)
    write_gguf(tmp_path / "m.gguf", "llama", model_metadata(), tensors)
    with pytest.raises(UnsupportedModelError, match="'blk.0.ffn_gate_inp.weight'"):
        load_gguf(tmp_path / "m.gguf")


def test_unsupported_tensor_type_is_named(tmp_path):
    tensors = {n: (v, Q.F32) for n, v in (to_gguf(*kv, "llama") for kv in hf_weights().items())}
    tensors["output_norm.weight"] = (np.zeros(HIDDEN, np.int32), None)  # stored as I32
    write_gguf(tmp_path / "m.gguf", "llama", model_metadata(), tensors)
    with pytest.raises(UnsupportedModelError, match="'output_norm.weight' has type I32"):
        load_gguf(tmp_path / "m.gguf")


def test_unsupported_architecture_is_named(tmp_path):
    tensors = {n: (v, Q.F32) for n, v in (to_gguf(*kv, "llama") for kv in hf_weights().items())}
    write_gguf(tmp_path / "m.gguf", "mamba", model_metadata("mamba"), tensors)
    with pytest.raises(UnsupportedModelError, match="'mamba'"):
        load_gguf(tmp_path / "m.gguf")


def test_metadata_disagreeing_with_tensors(tmp_path):
    meta = model_metadata(**{"llama.vocab_size": VOCAB + 1})
    write_model(tmp_path / "m.gguf", hf_weights(), metadata=meta)
    with pytest.raises(CheckpointError, match="'model.embed_tokens.weight'.*m.gguf"):
        load_gguf(tmp_path / "m.gguf")


# ---- quantized blocks kept as stored (load(dtype="auto"))


@pytest.mark.parametrize("kind", [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1])
def test_auto_keeps_blocks_and_matches_the_dequantized_model(tmp_path, kind):
    """Every matrix stays in its stored blocks (q/k rows reordered whole); the many-row
    forward equals float32 on the same file's dequantized values."""
    import pyengine
    from pyengine.ops import QuantLinear

    weights = hf_weights()
    kinds = {n: kind for n, v in weights.items() if v.ndim == 2}
    write_model(tmp_path / "m.gguf", weights, kinds=kinds)
    auto = pyengine.load(tmp_path / "m.gguf")
    fp32 = pyengine.load(tmp_path / "m.gguf", dtype="float32")
    assert auto.weight_formats == {kind.name: LAYERS * 6 + 1}
    first = auto._weights["layers"][0]
    assert isinstance(first["q"], QuantLinear) and first["q"].format == kind.name
    assert isinstance(auto._weights["embed"], QuantLinear)  # tied: one quantized table
    ids = np.arange(40) % VOCAB  # 40 rows: the widened path, float32 activations
    want = fp32.forward(ids)
    got = auto.forward(ids)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_auto_widens_block_types_without_kernels_with_a_warning(tmp_path):
    import pyengine

    weights = hf_weights()
    rng = np.random.default_rng(0)
    tensors = dict(to_gguf(*kv, "llama") for kv in weights.items())
    tensors = {n: (v, Q.F32) for n, v in tensors.items()}
    # one matrix as IQ4_NL (no native kernel): random valid blocks with finite fp16 scales
    rows, cols = weights["model.layers.0.mlp.down_proj.weight"].shape
    raw = rng.integers(0, 256, size=(rows, cols // 32, 18), dtype=np.uint8)
    scales = rng.uniform(-0.01, 0.01, (rows, cols // 32)).astype(np.float16)
    raw[:, :, :2] = scales[..., None].view(np.uint8)
    tensors["blk.0.ffn_down.weight"] = (raw.reshape(rows, -1), Q.IQ4_NL)
    write_gguf(tmp_path / "q.gguf", "llama", model_metadata(), tensors)
    with pytest.warns(UserWarning, match="IQ4_NL: 1 tensor.*blk.0|IQ4_NL: 1 tensor"):
        model = pyengine.load(tmp_path / "q.gguf")
    assert model.weight_formats["bfloat16"] == 1
