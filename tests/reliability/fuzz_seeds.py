"""Seed checkpoints for the loader fuzzers: small, valid, and touching every loader path.

Each seed loads and runs; the fuzzers mutate copies of them. Written without torch (safetensors
and GGUF bytes by hand or with the `gguf` package) so that a seed costs milliseconds.

- a GGUF Llama whose tensors use eight stored types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K,
  F32) with a byte-level BPE vocabulary (and SentencePiece scores, so that a mutation switching
  the tokenizer model reaches that builder too);
- a Hugging Face Llama folder: config.json, model.safetensors (F32, BF16 and F16 tensors),
  tokenizer.json, tokenizer_config.json with a chat template, generation_config.json;
- a sentence-transformers BERT folder: modules.json, the pooling config, sentence_bert_config;
- folders of Gemma 3, Gemma 2, Qwen3, Phi-3 (longrope) and GPT-2 (FAMILY_CONFIGS), so that
  config mutations reach each family's own parser.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

HIDDEN, HEADS, KV_HEADS, INTER, LAYERS, CONTEXT = 64, 4, 2, 256, 2, 64
HEAD_DIM = HIDDEN // HEADS


def _byte_alphabet() -> list[str]:
    """GPT-2's printable spelling of the 256 bytes (the vocabulary of a byte-level BPE)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]
TOKENS = ["<s>", "</s>", "<unk>"] + _byte_alphabet() + ["he", "ll", "hell", "hello", "Ġw", "Ġwo"]
VOCAB = len(TOKENS)


def _weights(rng: np.random.Generator, vocab: int, names: dict[str, tuple]) -> dict:
    return {k: rng.standard_normal(s).astype(np.float32) * 0.5 for k, s in names.items()}


# ---- GGUF


def _gguf_tensors() -> dict[str, tuple[tuple[int, ...], str]]:
    """GGUF name -> (numpy shape [rows, cols], stored type): one file, many block formats."""
    kv = KV_HEADS * HEAD_DIM
    layer_types = [
        {"q": "Q8_0", "k": "Q4_0", "v": "Q4_1", "o": "Q5_0", "gate": "Q5_1", "up": "Q8_0"},
        {"q": "Q4_0", "k": "Q8_0", "v": "Q5_1", "o": "Q4_1", "gate": "Q8_0", "up": "Q5_0"},
    ]
    down_types = ["Q4_K", "Q6_K"]  # K-quants need rows of 256: ffn_down's K is INTER
    out = {"token_embd.weight": ((VOCAB, HIDDEN), "Q8_0"), "output_norm.weight": ((HIDDEN,), "F32")}
    for i, t in enumerate(layer_types):
        p = f"blk.{i}."
        out.update(
            {
                p + "attn_norm.weight": ((HIDDEN,), "F32"),
                p + "attn_q.weight": ((HIDDEN, HIDDEN), t["q"]),
                p + "attn_k.weight": ((kv, HIDDEN), t["k"]),
                p + "attn_v.weight": ((kv, HIDDEN), t["v"]),
                p + "attn_output.weight": ((HIDDEN, HIDDEN), t["o"]),
                p + "ffn_norm.weight": ((HIDDEN,), "F32"),
                p + "ffn_gate.weight": ((INTER, HIDDEN), t["gate"]),
                p + "ffn_up.weight": ((INTER, HIDDEN), t["up"]),
                p + "ffn_down.weight": ((HIDDEN, INTER), down_types[i]),
            }
        )
    return out


# byte offsets of the fp16 super-block scales (d, and dmin where there is one) in a K block
K_SCALE_OFFSETS = {"Q4_K": (144, (0, 2)), "Q5_K": (176, (0, 2)), "Q6_K": (210, (208,))}


def _random_k_blocks(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Random quants and sub-block scales under small finite fp16 super-block scales."""
    size, offsets = K_SCALE_OFFSETS[kind]
    rows, cols = shape
    blocks = rng.integers(0, 256, (rows, cols // 256, size), dtype=np.uint8)
    scale = np.frombuffer(np.float16(0.002).tobytes(), np.uint8)
    for at in offsets:
        blocks[..., at : at + 2] = scale
    return blocks.reshape(rows, -1)


def write_gguf_seed(path: Path, context: int = CONTEXT) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("llama.block_count", LAYERS)
    writer.add_uint32("llama.context_length", context)
    writer.add_uint32("llama.embedding_length", HIDDEN)
    writer.add_uint32("llama.feed_forward_length", INTER)
    writer.add_uint32("llama.attention.head_count", HEADS)
    writer.add_uint32("llama.attention.head_count_kv", KV_HEADS)
    writer.add_uint32("llama.rope.dimension_count", HEAD_DIM)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", "gpt-2")
    writer.add_array("tokenizer.ggml.tokens", TOKENS)
    writer.add_array("tokenizer.ggml.token_type", [3, 3, 3] + [1] * (VOCAB - 3))
    writer.add_array("tokenizer.ggml.scores", [-float(i) for i in range(VOCAB)])
    writer.add_array("tokenizer.ggml.merges", MERGES)
    writer.add_uint32("tokenizer.ggml.bos_token_id", 0)
    writer.add_uint32("tokenizer.ggml.eos_token_id", 1)
    writer.add_uint32("tokenizer.ggml.unknown_token_id", 2)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    writer.add_string(
        "tokenizer.chat_template",
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>",
    )
    rng = np.random.default_rng(7)
    for name, (shape, kind) in _gguf_tensors().items():
        value = rng.standard_normal(shape).astype(np.float32) * 0.5
        qtype = gguf.GGMLQuantizationType[kind]
        if kind == "F32":
            writer.add_tensor(name, value)
        elif kind in K_SCALE_OFFSETS:  # gguf cannot quantize K-quants: random valid blocks
            writer.add_tensor(name, _random_k_blocks(kind, shape, rng), raw_dtype=qtype)
        else:
            writer.add_tensor(name, gguf.quants.quantize(value, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ---- safetensors folders


def safetensors_bytes(tensors: dict[str, np.ndarray], dtypes: dict[str, str]) -> bytes:
    """A .safetensors file: each float32 tensor stored as dtypes[name] (F32, F16 or BF16)."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        kind = dtypes.get(name, "F32")
        if kind == "F32":
            data = value.astype("<f4").tobytes()
        elif kind == "F16":
            data = value.astype("<f2").tobytes()
        else:  # BF16: the high half of each float32 (truncation is fine for a seed)
            data = (value.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": kind,
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _tokenizer_json(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(TOKENS)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split()) for m in MERGES]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 0)]
    )
    tok.add_special_tokens(["<s>", "</s>", "<unk>"])
    tok.save(str(folder / "tokenizer.json"))


def write_llama_folder_seed(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": 96,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0},
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 1,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    kv = KV_HEADS * HEAD_DIM
    shapes = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,)}
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "input_layernorm.weight": (HIDDEN,),
                p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
                p + "self_attn.k_proj.weight": (kv, HIDDEN),
                p + "self_attn.v_proj.weight": (kv, HIDDEN),
                p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
                p + "post_attention_layernorm.weight": (HIDDEN,),
                p + "mlp.gate_proj.weight": (96, HIDDEN),
                p + "mlp.up_proj.weight": (96, HIDDEN),
                p + "mlp.down_proj.weight": (HIDDEN, 96),
            }
        )
    tensors = _weights(np.random.default_rng(3), VOCAB, shapes)
    dtypes = {n: ("BF16" if "mlp" in n else "F16" if "self_attn" in n else "F32") for n in shapes}
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors, dtypes))
    _tokenizer_json(folder)
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": {"content": "</s>", "special": True},
                "model_max_length": CONTEXT,
                "chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
            }
        )
    )
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [1, 2]}))
    return folder


# config.json of the other decoder families: each family's own keys (windows, soft-caps, q/k
# norms, longrope, GPT-2's spellings), so that config mutations reach every family's parser
FAMILY_CONFIGS = {
    "gemma3": {
        "architectures": ["Gemma3ForCausalLM"],
        "head_dim": 16,
        "query_pre_attn_scalar": 12,
        "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention"],
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6},
        },
        "hidden_activation": "gelu_pytorch_tanh",
    },
    "gemma2": {
        "architectures": ["Gemma2ForCausalLM"],
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "sliding_window": 8,
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        "rope_theta": 10000.0,
    },
    "qwen3": {
        "architectures": ["Qwen3ForCausalLM"],
        "head_dim": 24,
        "use_sliding_window": True,
        "sliding_window": 8,
        "max_window_layers": 1,
        "rope_theta": 1e6,
    },
    "phi3": {
        "architectures": ["Phi3ForCausalLM"],
        "original_max_position_embeddings": 32,
        "rope_scaling": {
            "type": "longrope",
            "short_factor": [1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0],
            "long_factor": [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0],
        },
        "sliding_window": 48,
    },
    "gpt2": {
        "architectures": ["GPT2LMHeadModel"],
        "n_embd": HIDDEN,
        "n_head": HEADS,
        "n_layer": LAYERS,
        "n_positions": CONTEXT,
        "activation_function": "gelu_new",
    },
}


def write_family_folder_seed(folder: Path, family: str) -> Path:
    """A folder of one of FAMILY_CONFIGS, its tensors (F32, random) the ones the family's own
    table requires, tokenizer files as the Llama seed's."""
    from pyengine.loaders import config_from_hf, expected_tensors

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": 96,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "bos_token_id": 0,
        "eos_token_id": 1,
        **FAMILY_CONFIGS[family],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    specs = expected_tensors(config_from_hf(config))
    shapes = {n: s.shape for n, s in specs.items() if s.required}
    tensors = _weights(np.random.default_rng(5), VOCAB, shapes)
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors, {}))
    _tokenizer_json(folder)
    return folder


def write_family_gguf_seed(path: Path, family: str, folder: Path) -> Path:
    """The folder seed of `family` as a GGUF file (F32 tensors under the family's GGUF names,
    GPT-2's Conv1D weights transposed to [out, in] as llama.cpp's converter writes them, Phi-3's
    RoPE factors as tensors), with the GGUF seed's vocabulary."""
    import gguf
    from safetensors.numpy import load_file

    from pyengine.loaders import config_from_hf
    from pyengine.models import families

    own = families.by_name(family)
    cfg = config_from_hf(json.loads((folder / "config.json").read_text()))
    arch = own.gguf_architecture
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in (
        ("block_count", cfg.num_layers),
        ("context_length", cfg.max_position_embeddings),
        ("embedding_length", cfg.hidden_size),
        ("feed_forward_length", cfg.intermediate_size),
        ("attention.head_count", cfg.num_heads),
        ("attention.head_count_kv", cfg.num_kv_heads),
        ("attention.key_length", cfg.head_dim),
        ("attention.value_length", cfg.head_dim),
        ("rope.dimension_count", cfg.head_dim),
    ):
        w.add_uint32(f"{arch}.{key}", value)
    w.add_float32(f"{arch}.rope.freq_base", float(cfg.rope_theta or 10000.0))
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", float(cfg.norm_eps))
    w.add_float32(f"{arch}.attention.layer_norm_epsilon", float(cfg.norm_eps))
    if cfg.sliding_window:
        w.add_uint32(f"{arch}.attention.sliding_window", cfg.sliding_window)
    if family == "gemma2":
        w.add_float32(f"{arch}.attn_logit_softcapping", 50.0)
        w.add_float32(f"{arch}.final_logit_softcapping", 30.0)
    if family == "phi3":
        rope = cfg.options.longrope
        w.add_uint32(f"{arch}.rope.scaling.original_context_length", rope.original_max_positions)
        w.add_tensor("rope_factors_long.weight", np.array(rope.long_factor, np.float32))
        w.add_tensor("rope_factors_short.weight", np.array(rope.short_factor, np.float32))
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-2")
    w.add_array("tokenizer.ggml.tokens", TOKENS)
    w.add_array("tokenizer.ggml.token_type", [3, 3, 3] + [1] * (VOCAB - 3))
    w.add_array("tokenizer.ggml.merges", MERGES)
    w.add_uint32("tokenizer.ggml.bos_token_id", 0)
    w.add_uint32("tokenizer.ggml.eos_token_id", 1)
    names = {hf: g for g, hf in own.gguf_names.items()}
    layer_names = {hf: g for g, hf in own.gguf_layer_names.items()}
    for name, value in load_file(str(folder / "model.safetensors")).items():
        if name in names:
            gname = names[name]
        else:
            prefix = own.gguf_layer_prefix.split("{i}")[0]
            layer, rest = name[len(prefix) :].split(".", 1)
            gname = f"blk.{layer}.{layer_names[rest]}"
            if family == "gpt2" and value.ndim == 2:
                value = value.T  # Conv1D [in, out] -> [out, in]
        w.add_tensor(gname, np.ascontiguousarray(value, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_encoder_folder_seed(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": 96,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "max_position_embeddings": CONTEXT,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "pad_token_id": 0,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    shapes = {
        "embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
        "embeddings.position_embeddings.weight": (CONTEXT, HIDDEN),
        "embeddings.token_type_embeddings.weight": (2, HIDDEN),
        "embeddings.LayerNorm.weight": (HIDDEN,),
        "embeddings.LayerNorm.bias": (HIDDEN,),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value"):
            shapes[p + name + ".weight"] = (HIDDEN, HIDDEN)
            shapes[p + name + ".bias"] = (HIDDEN,)
        shapes[p + "attention.output.dense.weight"] = (HIDDEN, HIDDEN)
        shapes[p + "attention.output.dense.bias"] = (HIDDEN,)
        shapes[p + "attention.output.LayerNorm.weight"] = (HIDDEN,)
        shapes[p + "attention.output.LayerNorm.bias"] = (HIDDEN,)
        shapes[p + "intermediate.dense.weight"] = (96, HIDDEN)
        shapes[p + "intermediate.dense.bias"] = (96,)
        shapes[p + "output.dense.weight"] = (HIDDEN, 96)
        shapes[p + "output.dense.bias"] = (HIDDEN,)
        shapes[p + "output.LayerNorm.weight"] = (HIDDEN,)
        shapes[p + "output.LayerNorm.bias"] = (HIDDEN,)
    tensors = _weights(np.random.default_rng(5), VOCAB, shapes)
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors, {}))
    _tokenizer_json(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": HIDDEN, "pooling_mode_mean_tokens": True})
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 32, "do_lower_case": False})
    )
    return folder


# ---- a GGUF taken apart and put back together (so that metadata can be rewritten with any
# value type, including ones the gguf package's writer would refuse)

_GGUF_CODES = {  # our short names -> (GGUF value type id, struct code)
    "u8": (0, "B"),
    "i8": (1, "b"),
    "u16": (2, "H"),
    "i16": (3, "h"),
    "u32": (4, "I"),
    "i32": (5, "i"),
    "f32": (6, "f"),
    "bool": (7, "?"),
    "u64": (10, "Q"),
    "i64": (11, "q"),
    "f64": (12, "d"),
}
_TYPE_NAMES = {type_id: name for name, (type_id, _) in _GGUF_CODES.items()}


def _gguf_string(value: str | bytes) -> bytes:
    data = value if isinstance(value, bytes) else value.encode()
    return struct.pack("<Q", len(data)) + data


def _gguf_value(kind: str, value) -> bytes:
    """Type id and payload of one metadata value."""
    if kind in ("str", "str_bytes"):
        return struct.pack("<I", 8) + _gguf_string(value)
    if kind.startswith("arr_"):
        item = kind[4:]
        if item == "str":
            body = b"".join(_gguf_string(v) for v in value)
            return struct.pack("<IIQ", 9, 8, len(value)) + body
        type_id, code = _GGUF_CODES[item]
        body = b"".join(struct.pack("<" + code, _fit(item, v)) for v in value)
        return struct.pack("<IIQ", 9, type_id, len(value)) + body
    type_id, code = _GGUF_CODES[kind]
    return struct.pack("<I", type_id) + struct.pack("<" + code, _fit(kind, value))


def _fit(kind: str, value):
    """`value` made representable in `kind` (wrapped for ints, as a file's bits would be)."""
    if kind == "bool":
        return bool(value)
    if kind.startswith("f"):
        return float(value)
    bits = 8 * struct.calcsize("<" + _GGUF_CODES[kind][1])
    value = int(value) % 2**bits
    return value - 2**bits if kind.startswith("i") and value >= 2 ** (bits - 1) else value


def gguf_parts(path: Path) -> tuple[list[list], list[tuple]]:
    """(metadata [[key, kind, value]], tensors [(name, dims, type id, bytes)]) of a GGUF file,
    read with the gguf package (an independent reader)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    metadata = []
    for field in reader.fields.values():
        if field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.STRING:
            metadata.append([field.name, "str", field.contents()])
        elif vtype == gguf.GGUFValueType.ARRAY:
            item = field.types[1]
            kind = "str" if item == gguf.GGUFValueType.STRING else _TYPE_NAMES[int(item)]
            metadata.append([field.name, "arr_" + kind, field.contents()])
        else:
            metadata.append([field.name, _TYPE_NAMES[int(vtype)], field.contents()])
    tensors = [
        (t.name, [int(d) for d in t.shape], int(t.tensor_type), bytes(t.data.tobytes()))
        for t in reader.tensors
    ]
    return metadata, tensors


def gguf_bytes(metadata: list[list], tensors: list[tuple], align: int = 32) -> bytes:
    """A GGUF v3 file of these metadata entries and tensors (data aligned to `align`)."""
    head = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(metadata))]
    for key, kind, value in metadata:
        head.append(_gguf_string(key) + _gguf_value(kind, value))
    offset, data = 0, []
    for name, dims, type_id, raw in tensors:
        head.append(_gguf_string(name) + struct.pack("<I", len(dims)))
        head.append(struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", type_id, offset))
        pad = -len(raw) % align
        data.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    header = b"".join(head)
    return header + b"\0" * (-len(header) % align) + b"".join(data)
