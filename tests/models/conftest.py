"""Random-weight decoder checkpoints written by transformers, one per supported variant."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 97


# The shape every Llama-family variant shares: 2 layers, 4 query heads over 2 KV heads.
LLAMA_SHAPE = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)


def _family(config_cls, model_cls, **kw):
    return config_cls(**{**LLAMA_SHAPE, **kw}), model_cls


def _llama(**kw):
    kw = {"tie_word_embeddings": False, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, **kw}
    return _family(transformers.LlamaConfig, transformers.LlamaForCausalLM, **kw)


VARIANTS = {
    # grouped-query attention, untied embeddings
    "llama-gqa": lambda: _llama(),
    # multi-query attention, tied embeddings, explicit head_dim != hidden / heads
    "llama-mqa-tied-headdim": lambda: _llama(
        num_key_value_heads=1, tie_word_embeddings=True, head_dim=24
    ),
    "llama-rope-linear": lambda: _llama(rope_scaling={"rope_type": "linear", "factor": 2.0}),
    "llama3-rope": lambda: _llama(
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        rope_theta=500000.0,
    ),
    "mistral": lambda: _family(
        transformers.MistralConfig, transformers.MistralForCausalLM, sliding_window=None
    ),
    "qwen2-bias": lambda: _family(
        transformers.Qwen2Config, transformers.Qwen2ForCausalLM, tie_word_embeddings=True
    ),
    "mistral-window": lambda: _family(
        transformers.MistralConfig, transformers.MistralForCausalLM, sliding_window=16
    ),
    # q/k norms, explicit head_dim wider than hidden / heads, one sliding layer
    "qwen3": lambda: _family(
        transformers.Qwen3Config,
        transformers.Qwen3ForCausalLM,
        head_dim=24,
        tie_word_embeddings=True,
        use_sliding_window=True,
        sliding_window=16,
        max_window_layers=1,
        layer_types=["full_attention", "sliding_attention"],
    ),
    # (1 + w) norms, four per layer, GeGLU, q/k norms, sliding and global layers with their
    # own rope bases, a score scale that is not head_dim's
    "gemma3": lambda: _family(
        transformers.Gemma3TextConfig,
        transformers.Gemma3ForCausalLM,
        head_dim=32,
        query_pre_attn_scalar=24,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6},
        },
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    ),
    # soft-capped scores and logits (small caps, so that they bend), alternating windows
    "gemma2": lambda: _family(
        transformers.Gemma2Config,
        transformers.Gemma2ForCausalLM,
        head_dim=16,
        query_pre_attn_scalar=20,
        sliding_window=16,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=3.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    ),
    # fused qkv and gate_up, longrope past 64 positions
    "phi3-longrope": lambda: _family(
        transformers.Phi3Config,
        transformers.Phi3ForCausalLM,
        original_max_position_embeddings=64,
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0],
            "long_factor": [1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 12.0, 16.0],
        },
        sliding_window=48,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    ),
    "gpt2": lambda: (
        transformers.GPT2Config(
            vocab_size=VOCAB,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=256,
            bos_token_id=0,
            eos_token_id=0,
        ),
        transformers.GPT2LMHeadModel,
    ),
}


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def hf_checkpoint(request, tmp_path_factory):
    """(variant name, folder, the transformers model in eval mode, float32)."""
    torch.manual_seed(1234)
    config, cls = VARIANTS[request.param]()
    config._attn_implementation = "eager"  # soft-capping and windows as the reference writes them
    model = cls(config).eval()
    with torch.no_grad():  # random init leaves some biases at 0: make every weight count
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_(0.0, 0.1)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, folder, model
