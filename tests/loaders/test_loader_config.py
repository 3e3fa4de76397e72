"""ModelConfig from HF config.json dicts and from GGUF metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyengine.loaders import (
    CheckpointError,
    RopeScaling,
    UnsupportedModelError,
    config_from_gguf,
    config_from_hf,
    load_hf_config,
)

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
}


def test_llama_with_llama3_rope():
    c = config_from_hf(LLAMA)
    assert c.architecture == "llama"
    assert c.hf_architecture == "LlamaForCausalLM"
    assert (c.vocab_size, c.hidden_size, c.intermediate_size) == (128256, 2048, 8192)
    assert (c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim) == (16, 32, 8, 64)
    assert c.norm_type == "rmsnorm" and c.norm_eps == 1e-5
    assert c.rope_theta == 500000.0
    assert c.rope_scaling == RopeScaling(
        type="llama3",
        factor=32.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=8192,
    )
    assert c.tie_word_embeddings
    assert c.activation == "silu"
    assert c.bos_token_id == 128000
    assert c.eos_token_ids == (128001, 128008, 128009)
    assert not (c.attention_bias or c.attention_out_bias or c.mlp_bias)
    assert not c.is_encoder


def test_llama3_inv_freq_matches_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    ours = config_from_hf(LLAMA).rope_inv_freq()
    hf_config = transformers.LlamaConfig(**LLAMA)
    theirs, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_config, torch.device("cpu"))
    # transformers computes in float32
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-6)


def test_linear_rope_and_defaults():
    cfg = dict(LLAMA, rope_scaling={"type": "linear", "factor": 4.0})
    del cfg["num_key_value_heads"], cfg["rope_theta"], cfg["tie_word_embeddings"]
    c = config_from_hf(cfg)
    assert c.rope_scaling == RopeScaling(type="linear", factor=4.0)
    assert c.num_kv_heads == 32  # defaults to num_attention_heads
    assert c.rope_theta == 10000.0
    assert not c.tie_word_embeddings
    base = 1.0 / 10000.0 ** (np.arange(0, 64, 2) / 64)
    np.testing.assert_allclose(c.rope_inv_freq(), base / 4.0)


def test_rope_parameters_transformers_v5_spelling():
    cfg = {k: v for k, v in LLAMA.items() if k not in ("rope_theta", "rope_scaling")}
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": 100000.0}
    c = config_from_hf(cfg)
    assert c.rope_theta == 100000.0 and c.rope_scaling is None
    cfg["rope_parameters"] = {"rope_type": "linear", "rope_theta": 1e6, "factor": 2.0}
    c = config_from_hf(cfg)
    assert c.rope_theta == 1e6 and c.rope_scaling == RopeScaling(type="linear", factor=2.0)


@pytest.mark.parametrize("kind", ["yarn", "dynamic", "longrope"])
def test_unsupported_rope_scaling_is_named(kind):
    cfg = dict(LLAMA, rope_scaling={"rope_type": kind, "factor": 2.0})
    with pytest.raises(UnsupportedModelError, match=f"rope_scaling type '{kind}'"):
        config_from_hf(cfg)


def test_llama3_rope_missing_parameter():
    scaling = dict(LLAMA["rope_scaling"])
    del scaling["low_freq_factor"]
    with pytest.raises(CheckpointError, match="low_freq_factor"):
        config_from_hf(dict(LLAMA, rope_scaling=scaling))


def test_partial_rotary_is_rejected():
    with pytest.raises(UnsupportedModelError, match="partial_rotary_factor"):
        config_from_hf(dict(LLAMA, partial_rotary_factor=0.5))


def test_mistral_explicit_head_dim_and_sliding_window():
    # Mistral-Nemo: 32 heads of 128 in a 5120-wide model (5120 / 32 = 160)
    cfg = {
        "architectures": ["MistralForCausalLM"],
        "vocab_size": 131072,
        "hidden_size": 5120,
        "intermediate_size": 14336,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 1024000,
        "rms_norm_eps": 1e-5,
        "rope_theta": 1000000.0,
        "sliding_window": 4096,
    }
    c = config_from_hf(cfg)
    assert c.architecture == "mistral"
    assert c.head_dim == 128 and c.num_heads * c.head_dim == 4096
    assert c.sliding_window == 4096
    cfg["sliding_window"] = None
    assert config_from_hf(cfg).sliding_window is None


def test_qwen2_has_qkv_bias_only():
    cfg = {
        "architectures": ["Qwen2ForCausalLM"],
        "vocab_size": 151936,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "sliding_window": 32768,
    }
    c = config_from_hf(cfg)
    assert c.architecture == "qwen2"
    assert c.attention_bias and not c.attention_out_bias
    assert c.head_dim == 64 and c.sliding_window is None
    with pytest.raises(UnsupportedModelError, match="use_sliding_window"):
        config_from_hf(dict(cfg, use_sliding_window=True))


GPT2 = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "vocab_size": 50257,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,
    "n_positions": 1024,
    "n_ctx": 1024,
    "layer_norm_epsilon": 1e-5,
    "activation_function": "gelu_new",
    "bos_token_id": 50256,
    "eos_token_id": 50256,
}


def test_gpt2():
    c = config_from_hf(GPT2)
    assert c.architecture == "gpt2"
    assert c.intermediate_size == 4 * 768
    assert c.max_position_embeddings == 1024
    assert c.norm_type == "layernorm" and c.norm_eps == 1e-5
    assert c.activation == "gelu_tanh"
    assert c.tie_word_embeddings
    assert c.attention_bias and c.attention_out_bias and c.mlp_bias
    assert c.rope_theta is None and not c.uses_rope
    assert c.eos_token_ids == (50256,)
    with pytest.raises(UnsupportedModelError, match="scale_attn_by_inverse_layer_idx"):
        config_from_hf(dict(GPT2, scale_attn_by_inverse_layer_idx=True))


BERT = {
    "architectures": ["BertModel"],
    "vocab_size": 30522,
    "hidden_size": 384,
    "intermediate_size": 1536,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}


def test_bert_family():
    c = config_from_hf(BERT)
    assert c.architecture == "bert" and c.is_encoder
    assert (c.num_heads, c.num_kv_heads, c.head_dim) == (12, 12, 32)
    assert c.type_vocab_size == 2 and c.pad_token_id == 0 and c.position_offset == 0
    assert c.norm_eps == 1e-12 and c.activation == "gelu"
    assert config_from_hf(dict(BERT, architectures=["BertForMaskedLM"])).architecture == "bert"

    roberta = dict(BERT, architectures=["RobertaModel"], pad_token_id=1, type_vocab_size=1)
    roberta["max_position_embeddings"] = 514
    c = config_from_hf(roberta)
    assert c.architecture == "roberta"
    assert c.position_offset == 2  # positions start after padding_idx = 1
    assert c.type_vocab_size == 1

    xlmr = dict(roberta, architectures=["XLMRobertaModel"], vocab_size=250002)
    assert config_from_hf(xlmr).architecture == "xlm-roberta"

    with pytest.raises(UnsupportedModelError, match="relative_key"):
        config_from_hf(dict(BERT, position_embedding_type="relative_key"))


def test_model_type_fallback_without_architectures():
    cfg = {k: v for k, v in BERT.items() if k != "architectures"}
    cfg["model_type"] = "bert"
    assert config_from_hf(cfg).architecture == "bert"


def test_unsupported_architecture_is_named():
    with pytest.raises(UnsupportedModelError, match="T5ForConditionalGeneration"):
        config_from_hf({"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"})
    with pytest.raises(UnsupportedModelError, match="'mamba'"):
        config_from_hf({"model_type": "mamba"})


def test_unsupported_activation_is_named():
    with pytest.raises(UnsupportedModelError, match="hidden_act='quick_gelu'"):
        config_from_hf(dict(LLAMA, hidden_act="quick_gelu"))


def test_missing_or_bad_keys_are_named():
    cfg = dict(LLAMA)
    del cfg["hidden_size"]
    with pytest.raises(CheckpointError, match="'hidden_size' is missing"):
        config_from_hf(cfg)
    with pytest.raises(CheckpointError, match="num_key_value_heads=5"):
        config_from_hf(dict(LLAMA, num_key_value_heads=5))
    with pytest.raises(CheckpointError, match="'vocab_size' must be"):
        config_from_hf(dict(LLAMA, vocab_size="big"))


def test_load_hf_config_file_errors(tmp_path):
    with pytest.raises(CheckpointError, match="config.json does not exist"):
        load_hf_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_hf_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(GPT2))
    assert load_hf_config(tmp_path).architecture == "gpt2"


# ---- GGUF metadata

GGUF_META = {
    "general.architecture": "llama",
    "llama.block_count": 30,
    "llama.context_length": 8192,
    "llama.embedding_length": 576,
    "llama.feed_forward_length": 1536,
    "llama.attention.head_count": 9,
    "llama.attention.head_count_kv": 3,
    "llama.rope.freq_base": 100000.0,
    "llama.attention.layer_norm_rms_epsilon": 1e-5,
    "llama.vocab_size": 49152,
    "llama.rope.dimension_count": 64,
    "tokenizer.ggml.bos_token_id": 1,
    "tokenizer.ggml.eos_token_id": 2,
    "tokenizer.ggml.padding_token_id": 2,
}
GGUF_SHAPES = {"token_embd.weight": (49152, 576), "blk.0.attn_q.weight": (576, 576)}


def test_gguf_llama_metadata():
    c = config_from_gguf(GGUF_META, GGUF_SHAPES)
    assert c.architecture == "llama" and c.hf_architecture is None
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim) == (
        30,
        576,
        9,
        3,
        64,
    )
    assert c.intermediate_size == 1536 and c.vocab_size == 49152
    assert c.max_position_embeddings == 8192
    assert c.rope_theta == 100000.0 and c.rope_scaling is None
    assert c.tie_word_embeddings  # no output.weight
    assert (c.bos_token_id, c.eos_token_ids, c.pad_token_id) == (1, (2,), 2)
    untied = config_from_gguf(GGUF_META, dict(GGUF_SHAPES, **{"output.weight": (49152, 576)}))
    assert not untied.tie_word_embeddings


def test_gguf_rope_scaling_and_freq_factors():
    meta = dict(GGUF_META, **{"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 2})
    assert config_from_gguf(meta, GGUF_SHAPES).rope_scaling == RopeScaling("linear", 2.0)
    meta = dict(GGUF_META, **{"llama.rope.scaling.type": "yarn"})
    with pytest.raises(UnsupportedModelError, match="'yarn'"):
        config_from_gguf(meta, GGUF_SHAPES)
    factors = tuple(np.linspace(1.0, 8.0, 32))
    c = config_from_gguf(GGUF_META, GGUF_SHAPES, rope_freqs=factors)
    assert c.rope_scaling.type == "freq_factors"
    base = 1.0 / 100000.0 ** (np.arange(0, 64, 2) / 64)
    np.testing.assert_allclose(c.rope_inv_freq(), base / np.array(factors))


def test_gguf_errors_are_named():
    with pytest.raises(UnsupportedModelError, match="'mamba'"):
        config_from_gguf(dict(GGUF_META, **{"general.architecture": "mamba"}), GGUF_SHAPES)
    meta = {k: v for k, v in GGUF_META.items() if k != "llama.block_count"}
    with pytest.raises(CheckpointError, match="llama.block_count"):
        config_from_gguf(meta, GGUF_SHAPES)
    with pytest.raises(UnsupportedModelError, match="rope.dimension_count=32"):
        config_from_gguf(dict(GGUF_META, **{"llama.rope.dimension_count": 32}), GGUF_SHAPES)
