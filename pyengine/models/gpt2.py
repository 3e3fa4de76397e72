"""GPT-2: config (config.json and GGUF), tensor names, graph. Learned position embeddings,
pre-norm LayerNorm blocks, fused c_attn, gelu_new MLP.

Layouts: Hugging Face's Conv1D layers store weights [in_features, out_features], the transpose
of torch.nn.Linear; they are packed from the transposed view. llama.cpp's converter transposes
them to [out, in] in a GGUF (ggml's row-major [out][in]), which is what the kernels pack, so
quantized blocks there run as stored. Either way c_attn [3 * hidden] outputs are split into q,
k and v so each lands in its own buffer. GPT2Options.conv1d says which layout the names hold.

Per layer, on activations [T, hidden]:
    x = layer_norm(h, ln_1);  q, k, v = x @ c_attn[:, block] + bias;  cache[layer] <- k, v
    h += attention(q, cache) @ c_proj          residual fused in the epilogue
    x = layer_norm(h, ln_2);  h += gelu_tanh(x @ c_fc + b) @ mlp.c_proj
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pyengine.loaders.config import ModelConfig, activation_from, gguf_vocab_size
from pyengine.loaders.errors import CheckpointError
from pyengine.loaders.schema import TensorSpec
from pyengine.models.families import Family
from pyengine.runtime.graph import Graph

GELU_APPROXIMATION = {"gelu_tanh": "tanh", "gelu": "none"}
PROJECTIONS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


@dataclass(frozen=True)
class GPT2Options:
    conv1d: bool  # projection weights [in, out] (config.json folders); False: [out, in] (GGUF)


def config_from_hf(keys, hf_arch: str | None) -> ModelConfig:
    keys.reject("scale_attn_by_inverse_layer_idx", True, "attention scaled per layer")
    keys.reject("scale_attn_weights", False, "unscaled attention scores")
    keys.reject("add_cross_attention", True, "encoder-decoder cross-attention")
    hidden = keys.positive("n_embd")
    heads = keys.integer("n_head")
    if heads == 0 or hidden % heads:
        raise CheckpointError(f"{keys.source}: n_embd={hidden} is not a multiple of n_head={heads}")
    return ModelConfig(
        architecture="gpt2",
        vocab_size=keys.positive("vocab_size"),
        hidden_size=hidden,
        intermediate_size=keys.positive("n_inner", 4 * hidden),
        num_layers=keys.positive("n_layer"),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=keys.positive("n_positions"),
        norm_type="layernorm",
        norm_eps=keys.number("layer_norm_epsilon", 1e-5, positive=True),
        activation=activation_from(keys, "activation_function", "gelu_new"),
        tie_word_embeddings=keys.flag("tie_word_embeddings", True),
        attention_bias=True,
        attention_out_bias=True,
        mlp_bias=True,
        bos_token_id=keys.optional_int("bos_token_id"),
        eos_token_ids=keys.ids("eos_token_id"),
        pad_token_id=keys.optional_int("pad_token_id"),
        hf_architecture=hf_arch,
        options=GPT2Options(conv1d=True),
    )


def config_from_gguf(keys, arch: str, shapes, config_tensors) -> ModelConfig:
    def key(name: str) -> str:
        return f"{arch}.{name}"

    hidden = keys.positive(key("embedding_length"))
    heads = keys.positive(key("attention.head_count"))
    if hidden % heads:
        raise CheckpointError(
            f"{keys.source}: {key('embedding_length')}={hidden} is not a multiple of "
            f"{key('attention.head_count')}={heads}"
        )
    embd = shapes.get("token_embd.weight")
    if embd is None:
        raise CheckpointError(f"{keys.source}: tensor token_embd.weight is missing")
    vocab = gguf_vocab_size(keys, arch, embd)
    eos = keys.optional_int("tokenizer.ggml.eos_token_id")
    return ModelConfig(
        architecture="gpt2",
        vocab_size=int(vocab),
        hidden_size=hidden,
        intermediate_size=keys.positive(key("feed_forward_length"), 4 * hidden),
        num_layers=keys.positive(key("block_count")),
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=keys.positive(key("context_length")),
        norm_type="layernorm",
        norm_eps=keys.number(key("attention.layer_norm_epsilon"), 1e-5, positive=True),
        activation="gelu_tanh",
        tie_word_embeddings="output.weight" not in shapes,
        attention_bias=True,
        attention_out_bias=True,
        mlp_bias=True,
        bos_token_id=keys.optional_int("tokenizer.ggml.bos_token_id"),
        eos_token_ids=() if eos is None else (eos,),
        pad_token_id=keys.optional_int("tokenizer.ggml.padding_token_id"),
        options=GPT2Options(conv1d=False),
    )


def tensors(c: ModelConfig) -> dict[str, TensorSpec]:
    hidden, inter = c.hidden_size, c.intermediate_size
    # (in, out) of each projection; Conv1D stores it as is, GGUF transposed
    io = {"attn.c_attn": (hidden, 3 * hidden), "attn.c_proj": (hidden, hidden),
          "mlp.c_fc": (hidden, inter), "mlp.c_proj": (inter, hidden)}  # fmt: skip
    specs = {
        "wte.weight": TensorSpec((c.vocab_size, hidden), True),
        "wpe.weight": TensorSpec((c.max_position_embeddings, hidden), True),
    }
    for i in range(c.num_layers):
        layer = {f"ln_{n}.{p}": (hidden,) for n in (1, 2) for p in ("weight", "bias")}
        for name, (fan_in, fan_out) in io.items():
            layer[name + ".weight"] = (fan_in, fan_out) if c.options.conv1d else (fan_out, fan_in)
            layer[name + ".bias"] = (fan_out,)
        specs.update({f"h.{i}.{k}": TensorSpec(v, True) for k, v in layer.items()})
    specs["ln_f.weight"] = TensorSpec((hidden,), True)
    specs["ln_f.bias"] = TensorSpec((hidden,), True)
    specs["lm_head.weight"] = TensorSpec((c.vocab_size, hidden), not c.tie_word_embeddings)
    return specs


GGUF_NAMES = {
    "token_embd.weight": "wte.weight",
    "position_embd.weight": "wpe.weight",
    "output_norm.weight": "ln_f.weight",
    "output_norm.bias": "ln_f.bias",
    "output.weight": "lm_head.weight",
}
GGUF_LAYER_NAMES = {
    f"{gguf_name}.{p}": f"{hf_name}.{p}"
    for gguf_name, hf_name in (
        ("attn_norm", "ln_1"),
        ("attn_qkv", "attn.c_attn"),
        ("attn_output", "attn.c_proj"),
        ("ffn_norm", "ln_2"),
        ("ffn_up", "mlp.c_fc"),
        ("ffn_down", "mlp.c_proj"),
    )
    for p in ("weight", "bias")
}


def _projections(cfg: ModelConfig, packer, p: str) -> dict:
    hidden = cfg.hidden_size
    if not cfg.options.conv1d:  # [out, in]: packed (or run as stored) directly
        q, k, v = packer.linear_split(p + "attn.c_attn", [hidden] * 3, True)
        return {
            "q": q,
            "k": k,
            "v": v,
            "proj": packer.linear_from(p + "attn.c_proj", True),
            "fc": packer.linear_from(p + "mlp.c_fc", True),
            "fc_proj": packer.linear_from(p + "mlp.c_proj", True),
        }
    attn = p + "attn.c_attn"
    layer = {
        "q": packer.linear_conv1d(attn, slice(0, hidden)),
        "k": packer.linear_conv1d(attn, slice(hidden, 2 * hidden)),
        "v": packer.linear_conv1d(attn, slice(2 * hidden, 3 * hidden)),
        "proj": packer.linear_conv1d(p + "attn.c_proj"),
        "fc": packer.linear_conv1d(p + "mlp.c_fc"),
        "fc_proj": packer.linear_conv1d(p + "mlp.c_proj"),
    }
    packer.release(*(p + n + ".weight" for n in PROJECTIONS))
    return layer


def prepare(cfg: ModelConfig, packer) -> dict:
    if cfg.activation not in GELU_APPROXIMATION:
        raise ValueError(f"GPT-2 with activation {cfg.activation!r} is not supported")
    layers = []
    for i in range(cfg.num_layers):
        p = f"h.{i}."
        layer = {
            "ln_1": (packer.array(p + "ln_1.weight"), packer.array(p + "ln_1.bias")),
            "ln_2": (packer.array(p + "ln_2.weight"), packer.array(p + "ln_2.bias")),
        }
        layer.update(_projections(cfg, packer, p))
        layers.append(layer)
    wte = packer.array("wte.weight")
    if cfg.tie_word_embeddings:
        head = packer.linear(wte, stored=packer.stored_dtype("wte.weight"))
    else:
        head = packer.linear_from("lm_head", False)
    return {
        "wte": wte,
        "wpe": packer.array("wpe.weight"),
        "layers": layers,
        "ln_f": (packer.array("ln_f.weight"), packer.array("ln_f.bias")),
        "lm_head": head,
    }


def build(cfg: ModelConfig, w: dict, logits: str) -> Graph:
    from pyengine.models.common import add_lm_head

    g = Graph()
    hidden, heads, eps = cfg.hidden_size, cfg.num_heads, cfg.norm_eps
    h, x, pos = g.buffer("h", hidden), g.buffer("x", hidden), g.buffer("pos", hidden)
    q, k, v = g.buffer("q", hidden), g.buffer("k", hidden), g.buffer("v", hidden)
    attn = g.buffer("attn", hidden)
    fc = g.buffer("fc", cfg.intermediate_size)
    approximate = GELU_APPROXIMATION[cfg.activation]

    g.add("embed", [], h, "wte", table=w["wte"])
    g.add("embed", [], pos, "wpe", table=w["wpe"], source="positions")
    g.add("add", [h, pos], h, "h+wpe")
    for i, lw in enumerate(w["layers"]):
        n = f"L{i}."
        g.add("layer_norm", [h], x, n + "ln_1", weight=lw["ln_1"][0], bias=lw["ln_1"][1], eps=eps)
        g.add("linear", [x], q, n + "q", linear=lw["q"])
        g.add("linear", [x], k, n + "k", linear=lw["k"])
        g.add("linear", [x], v, n + "v", linear=lw["v"])
        cache = g.cache(i)
        g.add("kv_write", [k, v], cache, n + "kv_write", layer=i, kv_heads=heads)
        g.add("attention", [q, cache], attn, n + "attention", layer=i, heads=heads, causal=True)
        g.add("linear", [attn, h], h, n + "c_proj+residual", linear=lw["proj"])
        g.add("layer_norm", [h], x, n + "ln_2", weight=lw["ln_2"][0], bias=lw["ln_2"][1], eps=eps)
        g.add("linear", [x], fc, n + "c_fc", linear=lw["fc"])
        g.add("gelu", [fc], fc, n + "gelu", approximate=approximate)
        g.add("linear", [fc, h], h, n + "mlp_proj+residual", linear=lw["fc_proj"])
    g.add("layer_norm", [h], x, "ln_f", weight=w["ln_f"][0], bias=w["ln_f"][1], eps=eps)
    add_lm_head(g, x, w["lm_head"], cfg.vocab_size, logits)
    return g


FAMILY = Family(
    name="gpt2",
    hf_architectures=("GPT2LMHeadModel", "GPT2Model"),
    hf_model_types=("gpt2",),
    gguf_architecture="gpt2",
    config_from_hf=config_from_hf,
    config_from_gguf=config_from_gguf,
    tensors=tensors,
    module=sys.modules[__name__],
    gguf_names=GGUF_NAMES,
    gguf_layer_names=GGUF_LAYER_NAMES,
    gguf_layer_prefix="h.{i}.",
    hf_prefixes=("transformer.",),
)
