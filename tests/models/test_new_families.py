"""Gemma 2, Gemma 3, Qwen3, Phi-3 and windowed Mistral beyond the shared parity tests
(test_decoder_parity.py runs all of them on 37-token prompts):

- prompts far past the sliding window (window 64, prompt 300) and past longrope's original
  context, in one forward, and through generate()'s paged engine;
- the same random models written to GGUF the way llama.cpp's converter writes them (its tensor
  names, Gemma's norms stored as 1 + w, Phi-3's RoPE factors as tensors) load back to the same
  logits as transformers;
- the family table: unsupported options and architectures are named.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
import transformers
from test_decoder_parity import assert_logits_close, hf_logits

import pyengine
from pyengine.loaders import UnsupportedModelError, config_from_hf
from pyengine.models.decoder import DecoderModel

VOCAB = 97
BASE = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
PHI3_FACTORS = {
    "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0],
    "long_factor": [1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 12.0, 16.0],
}

# Long-context variants: window 64 (prompt 300 crosses it several times over).
LONG = {
    "gemma3": lambda: (
        transformers.Gemma3TextConfig(
            **BASE,
            head_dim=32,
            query_pre_attn_scalar=24,
            sliding_window=64,
            layer_types=["sliding_attention", "full_attention"],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "default", "rope_theta": 1e6},
            },
        ),
        transformers.Gemma3ForCausalLM,
    ),
    "gemma2": lambda: (
        transformers.Gemma2Config(
            **BASE,
            head_dim=16,
            sliding_window=64,
            query_pre_attn_scalar=16,
            attn_logit_softcapping=2.0,
            final_logit_softcapping=3.0,
        ),
        transformers.Gemma2ForCausalLM,
    ),
    "qwen3": lambda: (
        transformers.Qwen3Config(
            **BASE,
            head_dim=24,
            use_sliding_window=True,
            sliding_window=64,
            max_window_layers=1,
            layer_types=["full_attention", "sliding_attention"],
        ),
        transformers.Qwen3ForCausalLM,
    ),
    "mistral": lambda: (
        transformers.MistralConfig(**BASE, sliding_window=64),
        transformers.MistralForCausalLM,
    ),
    "phi3": lambda: (
        transformers.Phi3Config(
            **BASE,
            original_max_position_embeddings=128,
            sliding_window=64,
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, **PHI3_FACTORS},
        ),
        transformers.Phi3ForCausalLM,
    ),
}


def make_hf(name: str, **overrides):
    torch.manual_seed(7)
    config, cls = LONG[name]()
    for key, value in overrides.items():
        setattr(config, key, value)
    config._attn_implementation = "eager"
    model = cls(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module", params=sorted(LONG))
def long_model(request, tmp_path_factory):
    hf = make_hf(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return request.param, folder, hf


def test_prompt_far_past_the_window(long_model):
    name, folder, hf = long_model
    model = pyengine.load(folder)
    ids = np.random.default_rng(0).integers(0, VOCAB, (1, 300))
    assert_logits_close(model.forward(ids), hf_logits(hf, ids), f"{name}, 300 tokens")


def test_generation_past_the_window(long_model):
    """A 150-token prompt, then 32 greedy tokens: the paged engine's windowed decode reads
    only the window's keys and matches transformers token for token."""
    name, folder, hf = long_model
    model = pyengine.load(folder)
    prompt = np.random.default_rng(1).integers(3, VOCAB, 150)
    with torch.no_grad():
        want = hf.generate(
            torch.from_numpy(prompt[None]).long(),
            max_new_tokens=32,
            min_new_tokens=32,
            do_sample=False,
            pad_token_id=0,
        )[0, 150:].numpy()
    got = model.generate(prompt, max_new_tokens=32)
    # EOS (2) may end ours early; transformers, held to 32 tokens, suppressed it there
    n = next((i for i, t in enumerate(got) if int(t) == 2), len(got))
    assert n >= 8, f"{name}: only {n} tokens compared"
    np.testing.assert_array_equal(got[:n], want[:n], err_msg=name)


# ---- GGUF, written as llama.cpp's convert_hf_to_gguf.py writes these families

# HF layer tensor -> GGUF, per family (the converter's tensor map, spelled out independently
# of pyengine's own tables)
_COMMON = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GGUF_LAYER = {
    "qwen3": {**_COMMON, "post_attention_layernorm.weight": "ffn_norm.weight"},
    "gemma": {
        **_COMMON,
        "post_attention_layernorm.weight": "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight": "ffn_norm.weight",
        "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    },
    "phi3": {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.qkv_proj.weight": "attn_qkv.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    },
}
GGUF_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def convert(hf, arch: str, path, quantize=(), vocabulary: bool = False) -> None:
    """Writes `hf` as llama.cpp's converter would: names, Gemma norms + 1, metadata. Tensors
    whose GGUF name ends with one of `quantize` are stored as Q8_0. vocabulary: a byte-level
    BPE vocabulary of VOCAB tokens (3 specials, printable ASCII but "~", one merge)."""
    c = hf.config
    table = GGUF_LAYER["gemma" if arch.startswith("gemma") else arch]
    w = gguf.GGUFWriter(str(path), arch)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    w.add_uint32(f"{arch}.block_count", c.num_hidden_layers)
    w.add_uint32(f"{arch}.context_length", c.max_position_embeddings)
    w.add_uint32(f"{arch}.embedding_length", c.hidden_size)
    w.add_uint32(f"{arch}.feed_forward_length", c.intermediate_size)
    w.add_uint32(f"{arch}.attention.head_count", c.num_attention_heads)
    w.add_uint32(f"{arch}.attention.head_count_kv", c.num_key_value_heads)
    w.add_uint32(f"{arch}.attention.key_length", head_dim)
    w.add_uint32(f"{arch}.attention.value_length", head_dim)
    w.add_uint32(f"{arch}.rope.dimension_count", head_dim)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", c.rms_norm_eps)
    params = c.rope_parameters
    theta = params.get("full_attention", params).get("rope_theta")
    w.add_float32(f"{arch}.rope.freq_base", theta)
    if c.sliding_window:
        w.add_uint32(f"{arch}.attention.sliding_window", c.sliding_window)
    if arch == "gemma2":
        w.add_float32(f"{arch}.attn_logit_softcapping", c.attn_logit_softcapping)
        w.add_float32(f"{arch}.final_logit_softcapping", c.final_logit_softcapping)
    if arch == "phi3":
        w.add_uint32(
            f"{arch}.rope.scaling.original_context_length", c.original_max_position_embeddings
        )
        w.add_tensor("rope_factors_long.weight", np.array(PHI3_FACTORS["long_factor"], np.float32))
        w.add_tensor(
            "rope_factors_short.weight", np.array(PHI3_FACTORS["short_factor"], np.float32)
        )
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)
    if vocabulary:
        tokens = ["<unk>", "<s>", "</s>"] + [chr(c) for c in range(ord("!"), ord("}") + 1)]
        tokens.append("ab")
        assert len(tokens) == VOCAB
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", "gpt-2")
        w.add_array("tokenizer.ggml.tokens", tokens)
        w.add_array("tokenizer.ggml.token_type", [3, 3, 3] + [1] * (VOCAB - 3))
        w.add_array("tokenizer.ggml.merges", ["a b"])
    for name, value in hf.state_dict().items():
        value = value.float().numpy()
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        if arch.startswith("gemma") and name.endswith("norm.weight"):
            value = value + 1  # the converter's norm shift
        if name in GGUF_GLOBAL:
            gname = GGUF_GLOBAL[name]
        else:
            _, _, layer, rest = name.split(".", 3)
            gname = f"blk.{layer}.{table[rest]}"
        if gname.endswith(quantize):
            w.add_tensor(gname, gguf.quants.quantize(value, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
        else:
            w.add_tensor(gname, np.ascontiguousarray(value, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def load_gguf_model(path, dtype="auto") -> DecoderModel:
    weights = pyengine.loaders.load_weights(path, with_tokenizer=False)
    return DecoderModel(weights.config, weights.tensors, extras=weights.extras, dtype=dtype)


# What GGUF can say of a Gemma 3: no query_pre_attn_scalar (llama.cpp scales by key_length, the
# released models' value below 27B) and no layer types (llama.cpp fixes 5 sliding : 1 global).
# Qwen3 GGUF files (llama.cpp) have no sliding window.
AS_GGUF = {
    "gemma3": {
        "query_pre_attn_scalar": 32,
        "num_hidden_layers": 6,
        "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
    },
    "qwen3": {
        "use_sliding_window": False,
        "sliding_window": None,
        "layer_types": ["full_attention"] * 2,
    },
}
GGUF_ARCH = {"gemma3": "gemma3", "gemma2": "gemma2", "qwen3": "qwen3", "phi3": "phi3"}


@pytest.mark.parametrize("name", sorted(GGUF_ARCH))
def test_gguf_round_trip(name, tmp_path):
    """The file's config says the same as config.json (windows, scales, caps, rope) and the
    logits equal transformers' over a prompt past the window."""
    hf = make_hf(name, **AS_GGUF.get(name, {}))
    path = tmp_path / f"{name}.gguf"
    convert(hf, GGUF_ARCH[name], path)
    model = load_gguf_model(path)
    ids = np.random.default_rng(2).integers(0, VOCAB, (1, 200))
    assert_logits_close(model.forward(ids), hf_logits(hf, ids), f"{name} from GGUF")


def test_gguf_q8_0_weights_run_as_stored(tmp_path):
    """Gemma 3 with Q8_0 projections: they stay Q8_0 and the logits stay near float32's."""
    hf = make_hf("gemma3", **AS_GGUF["gemma3"])
    path = tmp_path / "gemma3-q8.gguf"
    convert(hf, "gemma3", path, quantize=("attn_q.weight", "ffn_up.weight", "ffn_down.weight"))
    model = load_gguf_model(path)
    assert model.weight_formats.get("Q8_0", 0) >= 4
    ids = np.random.default_rng(3).integers(0, VOCAB, (1, 90))
    want = hf_logits(hf, ids)
    err = np.abs(model.forward(ids) - want).max() / np.abs(want).max()
    assert err < 0.03, err


def test_unsupported_options_are_named():
    base = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
            "intermediate_size": 96, "vocab_size": 97}  # fmt: skip
    with pytest.raises(UnsupportedModelError, match="bidirectional"):
        config_from_hf({**base, "model_type": "gemma3_text", "use_bidirectional_attention": True})
    with pytest.raises(UnsupportedModelError, match="partial_rotary_factor"):
        config_from_hf({**base, "model_type": "phi3", "partial_rotary_factor": 0.75})
    with pytest.raises(UnsupportedModelError, match="activation"):
        config_from_hf({**base, "model_type": "gemma2", "hidden_activation": "relu"})
    with pytest.raises(UnsupportedModelError, match="Gemma3ForCausalLM"):
        config_from_hf({**base, "architectures": ["NopeForCausalLM"]})
    with pytest.raises(pyengine.loaders.CheckpointError, match="layer_types"):
        config_from_hf({**base, "model_type": "gemma2", "layer_types": ["full_attention"]})


def convert_gpt2(hf, path, quantize=()) -> None:
    """GPT-2 as llama.cpp's converter writes it: Conv1D weights transposed to [out, in]."""
    c = hf.config
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_uint32("gpt2.block_count", c.n_layer)
    w.add_uint32("gpt2.context_length", c.n_positions)
    w.add_uint32("gpt2.embedding_length", c.n_embd)
    w.add_uint32("gpt2.feed_forward_length", 4 * c.n_embd)
    w.add_uint32("gpt2.attention.head_count", c.n_head)
    w.add_float32("gpt2.attention.layer_norm_epsilon", c.layer_norm_epsilon)
    names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
             "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}  # fmt: skip
    top = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
           "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}  # fmt: skip
    for name, value in hf.transformer.state_dict().items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        value = value.float().numpy()
        if name in top:
            gname = top[name]
        else:
            _, layer, rest = name.split(".", 2)
            module, kind = rest.rsplit(".", 1)
            gname = f"blk.{layer}.{names[module]}.{kind}"
            if kind == "weight" and module not in ("ln_1", "ln_2"):
                value = value.T  # Conv1D [in, out] -> [out, in]
        if gname.endswith(quantize):
            w.add_tensor(gname, gguf.quants.quantize(value, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
        else:
            w.add_tensor(gname, np.ascontiguousarray(value, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("quantize", [(), ("attn_qkv.weight", "ffn_up.weight")])
def test_gpt2_gguf(tmp_path, quantize):
    torch.manual_seed(3)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4,
                                     n_positions=128)  # fmt: skip
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.ndim == 1:
                p.normal_(0.0, 0.1)
    path = tmp_path / "gpt2.gguf"
    convert_gpt2(hf, path, quantize)
    model = load_gguf_model(path)
    ids = np.random.default_rng(4).integers(0, VOCAB, (2, 50))
    want = hf_logits(hf, ids)
    if not quantize:
        assert_logits_close(model.forward(ids), want, "gpt2 from GGUF")
        return
    assert model.weight_formats.get("Q8_0") == 8  # q, k, v and c_fc of both layers, as stored
    err = np.abs(model.forward(ids) - want).max() / np.abs(want).max()
    assert err < 0.03, err


@pytest.mark.parametrize("name", ["mistral", "gemma3", "phi3"])
def test_window_layers_keep_only_the_window(name, tmp_path):
    """With small steps the engine keeps each sequence's keys for the window layers in a ring
    of blocks (memory proportional to the window, not the context): its pools for those layers
    are far smaller than the full layers', and greedy tokens past the window still match
    transformers (the ring wraps several times over 150 + 40 positions)."""
    from pyengine.serve.engine import Engine, SamplingParams

    hf = make_hf(name)
    hf.save_pretrained(tmp_path)
    model = pyengine.load(tmp_path)
    engine = Engine(model, n_blocks=40, block_size=16, max_batch=2, max_step_tokens=32,
                    prefix_caching=False)  # fmt: skip
    windows = model.layer_windows
    ring = engine.ring_blocks_per_seq
    assert ring == -(-(32 + 64 - 2) // 16) + 1 and ring < 512 // 16
    for layer, window in enumerate(windows):
        blocks = engine.pool.k[layer].shape[0]
        assert blocks == (2 * ring if window else 40), (layer, window, blocks)
    prompts = [np.random.default_rng(s).integers(3, VOCAB, n) for s, n in ((5, 150), (6, 97))]
    requests = [engine.submit(p, SamplingParams(max_tokens=40, ignore_eos=True)) for p in prompts]
    engine.run_until_idle()
    for p, req in zip(prompts, requests):
        with torch.no_grad():
            want = hf.generate(torch.from_numpy(p[None]).long(), max_new_tokens=40,
                               min_new_tokens=40, do_sample=False, pad_token_id=0)  # fmt: skip
        got = np.array(req.output)
        n = next((i for i, t in enumerate(got) if int(t) == 2), len(got))  # HF suppressed EOS
        np.testing.assert_array_equal(got[:n], want[0, len(p) : len(p) + n], err_msg=name)


def test_longrope_choice_is_per_sequence(tmp_path):
    """A short sequence keeps the short factors beside one past the original context (the
    choice is its own, so batching never changes its tokens), and both match transformers."""
    hf = make_hf("phi3")  # original context 128
    hf.save_pretrained(tmp_path)
    model = pyengine.load(tmp_path)
    rng = np.random.default_rng(9)
    short, long = rng.integers(3, VOCAB, 20), rng.integers(3, VOCAB, 200)
    alone = model.generate(short, max_new_tokens=16)
    both = model.generate([short, long], max_new_tokens=16)
    np.testing.assert_array_equal(both[0], alone)
    for prompt, got in zip((short, long), both):
        with torch.no_grad():
            want = hf.generate(torch.from_numpy(prompt[None]).long(), max_new_tokens=16,
                               min_new_tokens=16, do_sample=False, pad_token_id=0)  # fmt: skip
        n = next((i for i, t in enumerate(got) if int(t) == 2), len(got))
        np.testing.assert_array_equal(got[:n], want[0, len(prompt) : len(prompt) + n])


def test_longrope_attention_factor():
    """sqrt(1 + ln(s) / ln(original)): s from max_position_embeddings / original, whether the
    original context is given at the top level or inside rope_parameters, or the config's own
    "factor"."""
    base = {"model_type": "phi3", "hidden_size": 64, "num_attention_heads": 4,
            "num_hidden_layers": 2, "intermediate_size": 96, "vocab_size": 97,
            "max_position_embeddings": 512}  # fmt: skip
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, **PHI3_FACTORS}
    want = np.sqrt(1 + np.log(4) / np.log(128))
    for cfg in (
        {**base, "original_max_position_embeddings": 128, "rope_parameters": rope},
        {**base, "rope_parameters": {**rope, "original_max_position_embeddings": 128}},
        {**base, "rope_scaling": {**rope, "original_max_position_embeddings": 128}},
    ):
        got = config_from_hf(cfg).options.longrope.attention_factor
        assert got == pytest.approx(want)
    cfg = {**base, "rope_parameters": {**rope, "original_max_position_embeddings": 128,
                                       "factor": 32.0}}  # fmt: skip
    want = np.sqrt(1 + np.log(32) / np.log(128))
    assert config_from_hf(cfg).options.longrope.attention_factor == pytest.approx(want)
