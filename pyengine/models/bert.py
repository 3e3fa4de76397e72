"""The BERT family: BERT, RoBERTa, XLM-RoBERTa encoders (the base model; heads are ignored).

Embeddings: word[ids] + position[positions] + token_type[type_ids], then LayerNorm. RoBERTa's
positions start at padding_idx + 1 (config.position_offset). Post-norm blocks, per layer on
activations [T, hidden]:
    q, k, v = x @ W^T + b                      bidirectional attention over each row's real keys
    x = layer_norm(x + attention @ Wo^T + bo)  residual fused in the GEMM epilogue
    x = layer_norm(x + gelu(x @ Wi^T + bi) @ Wout^T + bout)
"""

from __future__ import annotations

import sys

from pyengine.loaders.config import ModelConfig, activation_from
from pyengine.loaders.errors import CheckpointError, UnsupportedModelError
from pyengine.loaders.schema import TensorSpec
from pyengine.models.families import Family
from pyengine.runtime.graph import Graph

GELU_APPROXIMATION = {"gelu": "none", "gelu_tanh": "tanh"}


def _parse(keys, family: str, hf_arch: str | None) -> ModelConfig:
    position_type = keys.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise UnsupportedModelError(
            f"{keys.source}: unsupported option position_embedding_type={position_type!r}; "
            "only 'absolute' is implemented"
        )
    keys.reject("is_decoder", True, "BERT used as a causal decoder")
    keys.reject("add_cross_attention", True, "encoder-decoder cross-attention")
    hidden = keys.positive("hidden_size")
    heads = keys.integer("num_attention_heads")
    if heads == 0 or hidden % heads:
        raise CheckpointError(
            f"{keys.source}: hidden_size={hidden} is not a multiple of num_attention_heads={heads}"
        )
    default_pad = 0 if family == "bert" else 1
    pad = keys.integer("pad_token_id", default_pad)
    return ModelConfig(
        architecture=family,
        vocab_size=keys.positive("vocab_size"),
        hidden_size=hidden,
        intermediate_size=keys.positive("intermediate_size"),
        num_layers=keys.positive("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=keys.positive("max_position_embeddings", 512),
        norm_type="layernorm",
        norm_eps=keys.number("layer_norm_eps", 1e-12, positive=True),
        activation=activation_from(keys, "hidden_act", "gelu"),
        tie_word_embeddings=keys.flag("tie_word_embeddings", True),
        attention_bias=True,
        attention_out_bias=True,
        mlp_bias=True,
        type_vocab_size=keys.integer("type_vocab_size", 2),
        # RoBERTa numbers positions from padding_idx + 1 (fairseq heritage)
        position_offset=0 if family == "bert" else pad + 1,
        bos_token_id=keys.optional_int("bos_token_id"),
        eos_token_ids=keys.ids("eos_token_id"),
        pad_token_id=pad,
        hf_architecture=hf_arch,
    )


def tensors(c: ModelConfig) -> dict[str, TensorSpec]:
    hidden, inter = c.hidden_size, c.intermediate_size
    specs = {
        "embeddings.word_embeddings.weight": TensorSpec((c.vocab_size, hidden), True),
        "embeddings.position_embeddings.weight": TensorSpec(
            (c.max_position_embeddings, hidden), True
        ),
        "embeddings.LayerNorm.weight": TensorSpec((hidden,), True),
        "embeddings.LayerNorm.bias": TensorSpec((hidden,), True),
    }
    if c.type_vocab_size:
        specs["embeddings.token_type_embeddings.weight"] = TensorSpec(
            (c.type_vocab_size, hidden), True
        )
    for i in range(c.num_layers):
        p = f"encoder.layer.{i}."
        layer = {
            "attention.self.query.weight": (hidden, hidden),
            "attention.self.query.bias": (hidden,),
            "attention.self.key.weight": (hidden, hidden),
            "attention.self.key.bias": (hidden,),
            "attention.self.value.weight": (hidden, hidden),
            "attention.self.value.bias": (hidden,),
            "attention.output.dense.weight": (hidden, hidden),
            "attention.output.dense.bias": (hidden,),
            "attention.output.LayerNorm.weight": (hidden,),
            "attention.output.LayerNorm.bias": (hidden,),
            "intermediate.dense.weight": (inter, hidden),
            "intermediate.dense.bias": (inter,),
            "output.dense.weight": (hidden, inter),
            "output.dense.bias": (hidden,),
            "output.LayerNorm.weight": (hidden,),
            "output.LayerNorm.bias": (hidden,),
        }
        specs.update({p + k: TensorSpec(v, True) for k, v in layer.items()})
    specs["pooler.dense.weight"] = TensorSpec((hidden, hidden), False)
    specs["pooler.dense.bias"] = TensorSpec((hidden,), False)
    return specs


def _rename(name: str) -> str:
    """TF-era BERT checkpoints call the LayerNorm parameters gamma and beta."""
    if name.endswith("LayerNorm.gamma"):
        return name[: -len("gamma")] + "weight"
    if name.endswith("LayerNorm.beta"):
        return name[: -len("beta")] + "bias"
    return name


def prepare(cfg: ModelConfig, packer) -> dict:
    if cfg.activation not in GELU_APPROXIMATION:
        raise ValueError(f"{cfg.architecture} with activation {cfg.activation!r} is not supported")

    def norm(prefix):
        return packer.array(prefix + ".weight"), packer.array(prefix + ".bias")

    layers = []
    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}."
        layers.append(
            {
                "q": packer.linear_from(p + "attention.self.query", True),
                "k": packer.linear_from(p + "attention.self.key", True),
                "v": packer.linear_from(p + "attention.self.value", True),
                "o": packer.linear_from(p + "attention.output.dense", True),
                "attn_norm": norm(p + "attention.output.LayerNorm"),
                "inter": packer.linear_from(p + "intermediate.dense", True),
                "out": packer.linear_from(p + "output.dense", True),
                "out_norm": norm(p + "output.LayerNorm"),
            }
        )
    e = "embeddings."
    return {
        "word": packer.array(e + "word_embeddings.weight"),
        "position": packer.array(e + "position_embeddings.weight"),
        "type": packer.array(e + "token_type_embeddings.weight") if cfg.type_vocab_size else None,
        "norm": norm(e + "LayerNorm"),
        "layers": layers,
    }


def build(cfg: ModelConfig, w: dict) -> Graph:
    """The encoder graph; its output is the last hidden state, buffer "h" [T, hidden]."""
    g = Graph()
    hidden, heads, eps = cfg.hidden_size, cfg.num_heads, cfg.norm_eps
    h, x, tmp = g.buffer("h", hidden), g.buffer("x", hidden), g.buffer("tmp", hidden)
    q, k, v = g.buffer("q", hidden), g.buffer("k", hidden), g.buffer("v", hidden)
    attn = g.buffer("attn", hidden)
    fc = g.buffer("fc", cfg.intermediate_size)
    approximate = GELU_APPROXIMATION[cfg.activation]

    g.add("embed", [], x, "word_embeddings", table=w["word"])
    g.add("embed", [], tmp, "position_embeddings", table=w["position"], source="positions")
    g.add("add", [x, tmp], x, "x+positions")
    if w["type"] is not None:
        g.add("embed", [], tmp, "token_type_embeddings", table=w["type"], source="type_ids")
        g.add("add", [x, tmp], x, "x+token_types")
    nw, nb = w["norm"]
    g.add("layer_norm", [x], h, "embeddings_norm", weight=nw, bias=nb, eps=eps)
    for i, lw in enumerate(w["layers"]):
        n = f"L{i}."
        g.add("linear", [h], q, n + "query", linear=lw["q"])
        g.add("linear", [h], k, n + "key", linear=lw["k"])
        g.add("linear", [h], v, n + "value", linear=lw["v"])
        # One K/V scratch serves every layer: each layer's keys are consumed before the next.
        cache = g.cache(0)  # one cache, rewritten by every layer: the encoder keeps no state
        g.add("kv_write", [k, v], cache, n + "kv_write", layer=0, kv_heads=heads)
        g.add("attention", [q, cache], attn, n + "attention", layer=0, heads=heads, causal=False)
        g.add("linear", [attn, h], tmp, n + "attn_out+residual", linear=lw["o"])
        g.add(
            "layer_norm",
            [tmp],
            h,
            n + "attn_norm",
            weight=lw["attn_norm"][0],
            bias=lw["attn_norm"][1],
            eps=eps,
        )
        g.add("linear", [h], fc, n + "intermediate", linear=lw["inter"])
        g.add("gelu", [fc], fc, n + "gelu", approximate=approximate)
        g.add("linear", [fc, h], tmp, n + "output+residual", linear=lw["out"])
        g.add(
            "layer_norm",
            [tmp],
            h,
            n + "out_norm",
            weight=lw["out_norm"][0],
            bias=lw["out_norm"][1],
            eps=eps,
        )
    return g


def _family(name: str, hf_archs: tuple[str, ...], prefix: str) -> Family:
    return Family(
        name=name,
        hf_architectures=hf_archs,
        hf_model_types=(name,),
        gguf_architecture=None,
        config_from_hf=lambda keys, hf_arch: _parse(keys, name, hf_arch),
        config_from_gguf=None,
        tensors=tensors,
        module=sys.modules[__name__],
        hf_prefixes=(prefix,),
        hf_rename=_rename,
        kind="encoder",
    )


FAMILIES = (
    _family("bert", ("BertModel", "BertForMaskedLM", "BertForPreTraining"), "bert."),
    _family("roberta", ("RobertaModel", "RobertaForMaskedLM"), "roberta."),
    _family("xlm-roberta", ("XLMRobertaModel", "XLMRobertaForMaskedLM"), "roberta."),
)
