"""Gemma 2 and Gemma 3 text models: config (config.json and GGUF), tensor names, graph.

Per layer, on activations [T, hidden] (every norm an RMSNorm scaling by 1 + w):
    x  = norm(h, input_layernorm)
    q, k, v = x Wq, x Wk, x Wv
    q, k = per-head norm(q, q_norm), norm(k, k_norm)              Gemma 3 only
    q, k = rope(q), rope(k)     sliding layers of Gemma 3: the local base (10k), others the global
    a  = attention(q, cache)    scale query_pre_attn_scalar^-1/2; sliding layers see the last
                                `sliding_window` keys; Gemma 2 soft-caps the scores
    h += norm(a Wo, post_attention_layernorm)
    x  = norm(h, pre_feedforward_layernorm)
    h += norm(gelu_tanh(x Wgate) * (x Wup) Wdown, post_feedforward_layernorm)
Embeddings are multiplied by sqrt(hidden) (as a float32, like transformers in fp32); the final
norm feeds the tied LM head; Gemma 2 soft-caps the logits (cap * tanh(logits / cap)).

Which layers slide: config.json's layer_types, else Gemma 2's even layers and Gemma 3's five of
every six (layer i slides unless (i + 1) % 6 == 0), the patterns llama.cpp fixes for GGUF too.

GGUF: llama.cpp's converter stores every Gemma norm weight as 1 + w (its RMSNorm multiplies by
the weight alone), so the offset added at load is 1 for config.json folders and 0 for GGUF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pyengine.loaders.config import (
    ACTIVATIONS,
    LayerWindows,
    ModelConfig,
    gguf_decoder_fields,
    gguf_rope_scaling,
    hf_decoder_fields,
    layer_windows_from_hf,
    rope_from_hf,
    rope_scaling_from,
)
from pyengine.loaders.errors import CheckpointError, UnsupportedModelError
from pyengine.loaders.schema import TensorSpec
from pyengine.models import llama
from pyengine.models.families import Family
from pyengine.runtime.graph import Graph

SLIDING_PATTERN = {"gemma2": 2, "gemma3": 6}  # every n-th layer (the last of n) is global


@dataclass(frozen=True)
class GemmaOptions:
    query_pre_attn_scalar: float  # scores scaled by its inverse square root
    layer_windows: LayerWindows  # keys per query of each layer, 0: full attention
    local_rope_theta: float | None  # RoPE base of the sliding layers (Gemma 3); None: global
    attn_softcap: float  # 0: none
    final_softcap: float  # 0: none
    norm_offset: float  # added to every norm weight at load: 1 (config.json) or 0 (GGUF)
    qk_norm: bool  # per-head RMSNorm of q and k (Gemma 3)


def _is_sliding(family: str):
    pattern = SLIDING_PATTERN[family]
    return lambda i: (i + 1) % pattern != 0


def _gelu_tanh(keys, key: str) -> None:
    name = keys.get(key, "gelu_pytorch_tanh")
    if not isinstance(name, str) or ACTIVATIONS.get(name) != "gelu_tanh":
        raise UnsupportedModelError(
            f"{keys.source}: unsupported activation {key}={name!r} (Gemma's MLP is GeGLU with "
            "the tanh approximation)"
        )


def _rope_hf(keys, family: str):
    """(global theta, global scaling, local theta or None) from config.json: transformers >= 5
    writes rope_parameters per layer type for Gemma 3; older files rope_theta, rope_scaling
    and rope_local_base_freq."""
    params = keys.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params:
        parts = {}
        for kind in ("full_attention", "sliding_attention"):
            part = params.get(kind, params["full_attention"])
            theta = part.get("rope_theta") if isinstance(part, dict) else None
            if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not theta > 0:
                raise CheckpointError(
                    f"{keys.source}: rope_parameters[{kind!r}] needs a positive rope_theta"
                )
            parts[kind] = (float(theta), rope_scaling_from(part, keys.source))
        if parts["sliding_attention"][1] is not None:
            raise UnsupportedModelError(
                f"{keys.source}: unsupported option: RoPE scaling on the sliding layers"
            )
        theta, scaling = parts["full_attention"]
        local = parts["sliding_attention"][0] if family == "gemma3" else None
        return theta, scaling, local
    theta, scaling = rope_from_hf(keys)
    local = keys.number("rope_local_base_freq", 10000.0, positive=True)
    return theta, scaling, local if family == "gemma3" else None


def _softcap(keys, key: str) -> float:
    value = keys.get(key)
    return 0.0 if value is None else keys.number(key, positive=True)


def _config_from_hf(family: str):
    def parse(keys, hf_arch: str | None) -> ModelConfig:
        keys.reject("use_bidirectional_attention", True, "bidirectional attention (an encoder)")
        fields = hf_decoder_fields(keys, 8192)
        layers, head_dim = fields["num_layers"], fields["head_dim"]
        _gelu_tanh(keys, "hidden_activation" if keys.get("hidden_activation") else "hidden_act")
        theta, scaling, local_theta = _rope_hf(keys, family)
        sliding = _is_sliding(family)
        for pattern_key in ("sliding_window_pattern", "_sliding_window_pattern"):
            if family == "gemma3" and keys.get(pattern_key) is not None:
                n = keys.positive(pattern_key)
                sliding = lambda i, n=n: (i + 1) % n != 0  # noqa: E731
                break
        window = keys.optional_int("sliding_window")
        if window == 0:
            raise CheckpointError(f"{keys.source}: 'sliding_window' must be positive")
        options = GemmaOptions(
            query_pre_attn_scalar=keys.number("query_pre_attn_scalar", head_dim, positive=True),
            layer_windows=layer_windows_from_hf(keys, layers, window, sliding),
            local_rope_theta=local_theta,
            attn_softcap=_softcap(keys, "attn_logit_softcapping"),
            final_softcap=_softcap(keys, "final_logit_softcapping"),
            norm_offset=1.0,
            qk_norm=family == "gemma3",
        )
        return ModelConfig(
            **fields,
            architecture=family,
            norm_eps=keys.number("rms_norm_eps", 1e-6, positive=True),
            activation="gelu_tanh",
            tie_word_embeddings=keys.flag("tie_word_embeddings", True),
            rope_theta=theta,
            rope_scaling=scaling,
            attention_bias=keys.flag("attention_bias", False),
            attention_out_bias=keys.flag("attention_bias", False),
            sliding_window=window,
            hf_architecture=hf_arch,
            options=options,
        )

    return parse


# llama.cpp scales Gemma's 27B scores by (hidden / heads)^-1/2 instead of key_length^-1/2 (the
# models' query_pre_attn_scalar, which GGUF does not store); it recognizes them by layer count.
_SCALAR_BY_HIDDEN_PER_HEAD = {"gemma2": 46, "gemma3": 62}


def _config_from_gguf(family: str):
    def parse(keys, arch: str, shapes, config_tensors) -> ModelConfig:
        def key(name: str) -> str:
            return f"{arch}.{name}"

        fields = gguf_decoder_fields(keys, arch, shapes)
        hidden, heads = fields["hidden_size"], fields["num_heads"]
        layers, head_dim = fields["num_layers"], fields["head_dim"]
        window = keys.optional_int(key("attention.sliding_window"))
        if window == 0:
            raise CheckpointError(f"{keys.source}: {key('attention.sliding_window')} must be > 0")
        sliding = _is_sliding(family)
        scalar = hidden / heads if layers == _SCALAR_BY_HIDDEN_PER_HEAD[family] else head_dim
        local = keys.number(key("rope.freq_base_swa"), 10000.0, positive=True)
        options = GemmaOptions(
            query_pre_attn_scalar=float(scalar),
            layer_windows=LayerWindows(layers, int(window or 0), sliding=sliding),
            local_rope_theta=local if family == "gemma3" else None,
            attn_softcap=_softcap(keys, key("attn_logit_softcapping")),
            final_softcap=_softcap(keys, key("final_logit_softcapping")),
            norm_offset=0.0,
            qk_norm=family == "gemma3",
        )
        return ModelConfig(
            **fields,
            architecture=family,
            activation="gelu_tanh",
            rope_scaling=gguf_rope_scaling(keys, arch),
            sliding_window=window,
            options=options,
        )

    return parse


def tensors(c: ModelConfig) -> dict[str, TensorSpec]:
    hidden, inter = c.hidden_size, c.intermediate_size
    q_rows, kv_rows = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    specs = {"model.embed_tokens.weight": TensorSpec((c.vocab_size, hidden), True)}
    for i in range(c.num_layers):
        layer = {
            "input_layernorm.weight": (hidden,),
            "self_attn.q_proj.weight": (q_rows, hidden),
            "self_attn.k_proj.weight": (kv_rows, hidden),
            "self_attn.v_proj.weight": (kv_rows, hidden),
            "self_attn.o_proj.weight": (hidden, q_rows),
            "post_attention_layernorm.weight": (hidden,),
            "pre_feedforward_layernorm.weight": (hidden,),
            "post_feedforward_layernorm.weight": (hidden,),
            "mlp.gate_proj.weight": (inter, hidden),
            "mlp.up_proj.weight": (inter, hidden),
            "mlp.down_proj.weight": (hidden, inter),
        }
        if c.options.qk_norm:
            layer["self_attn.q_norm.weight"] = (c.head_dim,)
            layer["self_attn.k_norm.weight"] = (c.head_dim,)
        if c.attention_bias:
            layer.update(
                {
                    f"self_attn.{p}_proj.bias": (n,)
                    for p, n in (("q", q_rows), ("k", kv_rows), ("v", kv_rows), ("o", hidden))
                }
            )
        specs.update({f"model.layers.{i}.{k}": TensorSpec(v, True) for k, v in layer.items()})
    specs["model.norm.weight"] = TensorSpec((hidden,), True)
    specs["lm_head.weight"] = TensorSpec((c.vocab_size, hidden), not c.tie_word_embeddings)
    return specs


GGUF_NAMES = llama.GGUF_NAMES  # the same whole-model tensors
GGUF_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def inv_freq(theta: float, head_dim: int) -> np.ndarray:
    return 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)


def prepare(cfg: ModelConfig, packer) -> dict:
    from pyengine.models.common import RopeTable

    o: GemmaOptions = cfg.options

    def norm(name: str) -> np.ndarray:
        return packer.array(name) + np.float32(o.norm_offset)

    bias = cfg.attention_bias
    layers = []
    for i in range(cfg.num_layers):
        p = f"model.layers.{i}."
        layers.append(
            {
                "input_norm": norm(p + "input_layernorm.weight"),
                "q": packer.linear_from(p + "self_attn.q_proj", bias),
                "k": packer.linear_from(p + "self_attn.k_proj", bias),
                "v": packer.linear_from(p + "self_attn.v_proj", bias),
                "q_norm": norm(p + "self_attn.q_norm.weight") if o.qk_norm else None,
                "k_norm": norm(p + "self_attn.k_norm.weight") if o.qk_norm else None,
                "o": packer.linear_from(p + "self_attn.o_proj", bias),
                "post_attn_norm": norm(p + "post_attention_layernorm.weight"),
                "pre_ffn_norm": norm(p + "pre_feedforward_layernorm.weight"),
                "post_ffn_norm": norm(p + "post_feedforward_layernorm.weight"),
                "gate_up": packer.linear_concat([p + "mlp.gate_proj", p + "mlp.up_proj"], False),
                "down": packer.linear_from(p + "mlp.down_proj", False),
            }
        )
    embed, lm_head = packer.embedding_and_head(cfg.tie_word_embeddings)
    ctx = cfg.max_position_embeddings
    local = None
    if o.local_rope_theta is not None:
        local = RopeTable(inv_freq(o.local_rope_theta, cfg.head_dim), ctx)
    return {
        "embed": embed,
        "embed_scale": float(np.float32(math.sqrt(cfg.hidden_size))),
        "layers": layers,
        "final_norm": norm("model.norm.weight"),
        "lm_head": lm_head,
        "rope": RopeTable(cfg.rope_inv_freq(), ctx),
        "rope_local": local,
    }


def build(cfg: ModelConfig, w: dict, logits: str) -> Graph:
    from pyengine.models.common import add_attention, add_lm_head

    o: GemmaOptions = cfg.options
    g = Graph()
    eps = cfg.norm_eps
    h, x, y = (g.buffer(n, cfg.hidden_size) for n in ("h", "x", "y"))
    gate_up = g.buffer("gate_up", 2 * cfg.intermediate_size)
    act = g.buffer("act", cfg.intermediate_size)
    scale = o.query_pre_attn_scalar**-0.5

    g.add("embed", [], h, "embed_tokens", table=w["embed"])
    g.add("scale", [h], h, "embed_scale", scale=w["embed_scale"])
    for i, lw in enumerate(w["layers"]):
        n = f"L{i}."
        window = o.layer_windows[i]
        table = w["rope_local"] if window and w["rope_local"] is not None else w["rope"]
        g.add("rms_norm", [h], x, n + "input_norm", weight=lw["input_norm"], eps=eps)
        attn = add_attention(
            g, n, i, x, lw, cfg, table, window=window, scale=scale, softcap=o.attn_softcap
        )
        g.add("linear", [attn], y, n + "o_proj", linear=lw["o"])
        g.add("rms_norm", [y], y, n + "post_attn_norm", weight=lw["post_attn_norm"], eps=eps)
        g.add("add", [h, y], h, n + "attn_residual")
        g.add("rms_norm", [h], x, n + "pre_ffn_norm", weight=lw["pre_ffn_norm"], eps=eps)
        g.add("linear", [x], gate_up, n + "gate_up_proj", linear=lw["gate_up"])
        g.add("geglu", [gate_up], act, n + "geglu")
        g.add("linear", [act], y, n + "down_proj", linear=lw["down"])
        g.add("rms_norm", [y], y, n + "post_ffn_norm", weight=lw["post_ffn_norm"], eps=eps)
        g.add("add", [h, y], h, n + "mlp_residual")
    g.add("rms_norm", [h], x, "final_norm", weight=w["final_norm"], eps=eps)
    add_lm_head(g, x, w["lm_head"], cfg.vocab_size, logits)
    if o.final_softcap:
        g.add("softcap", ["logits"], "logits", "final_softcap", cap=o.final_softcap)
    return g


def _family(name: str, hf_archs: tuple[str, ...], model_types: tuple[str, ...], module) -> Family:
    return Family(
        name=name,
        hf_architectures=hf_archs,
        hf_model_types=model_types,
        gguf_architecture=name,
        config_from_hf=_config_from_hf(name),
        config_from_gguf=_config_from_gguf(name),
        tensors=tensors,
        module=module,
        gguf_names=GGUF_NAMES,
        gguf_layer_names=GGUF_LAYER_NAMES,
    )


def _families():
    import sys

    me = sys.modules[__name__]
    return (
        _family("gemma2", ("Gemma2ForCausalLM", "Gemma2Model"), ("gemma2",), me),
        _family("gemma3", ("Gemma3ForCausalLM", "Gemma3TextModel"), ("gemma3_text",), me),
    )


FAMILIES = _families()
