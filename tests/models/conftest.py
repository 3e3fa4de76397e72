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
    model = cls(config).eval()
    with torch.no_grad():  # random init leaves some biases at 0: make every weight count
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_(0.0, 0.1)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, folder, model
