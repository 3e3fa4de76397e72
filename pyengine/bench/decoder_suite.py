"""Decoder workloads: prefill and decode tokens/s of a causal LM, pyengine next to
transformers on torch (fp32, the same weights) at the same thread count."""

from __future__ import annotations

import time

import numpy as np

import pyengine
from pyengine import _C
from pyengine.bench.peers import peer_threads
from pyengine.bench.results import Result
from pyengine.bench.timing import Timing, measure
from pyengine.loaders import ModelConfig


def prompt_ids(vocab: int, length: int, seed: int = 0) -> np.ndarray:
    """A fixed pseudo-random prompt (the speed of a dense decoder does not depend on the ids)."""
    return np.random.default_rng(seed).integers(10, vocab - 10, length).astype(np.int32)


def pyengine_prefill(model, ids: np.ndarray, repeat: int) -> Timing:
    pads = np.zeros(1, np.int32)
    return measure(
        lambda: model.start(ids[None], pads, len(ids) + 1, "last"), repeat=repeat, min_seconds=0.0
    )


def pyengine_decode(model, ids: np.ndarray, new_tokens: int) -> dict:
    """Greedy decode of new_tokens after the prompt; per-step wall times, and the share of
    that time spent outside native kernels (Python overhead)."""
    pads = np.zeros(1, np.int32)
    logits = model.start(ids[None], pads, len(ids) + new_tokens, "last")
    steps, native = [], []
    for i in range(new_tokens):
        token = np.argmax(logits, axis=-1).astype(np.int32)
        k0, t0 = _C.kernel_seconds(), time.perf_counter()
        logits = model.step(token, pads, len(ids) + i)
        steps.append(time.perf_counter() - t0)
        native.append(_C.kernel_seconds() - k0)
    wall, inside = float(np.sum(steps)), float(np.sum(native))
    return {"timing": Timing(steps), "python_overhead": (wall - inside) / wall}


def torch_prefill_and_decode(hf_model, ids: np.ndarray, new_tokens: int, repeat: int):
    """transformers' own forward with its KV cache (DynamicCache), greedy, inference mode."""
    import torch

    x = torch.from_numpy(ids[None].astype(np.int64))

    def prefill():
        with torch.inference_mode():
            return hf_model(x, use_cache=True, logits_to_keep=1)

    prefill_t = measure(prefill, repeat=repeat, min_seconds=0.0)
    steps = []
    with torch.inference_mode():
        out = hf_model(x, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        for _ in range(new_tokens):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t0 = time.perf_counter()
            out = hf_model(nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
            steps.append(time.perf_counter() - t0)
    return prefill_t, Timing(steps)


def llama_cpp_prefill_and_decode(gguf_path, ids, new_tokens, threads, repeat):
    """llama.cpp through llama-cpp-python on the same GGUF (its native 4-bit weights)."""
    from llama_cpp import Llama

    n_ctx = len(ids) + new_tokens + 8
    # n_batch = n_ctx: the whole prompt is one batch, and llama-cpp-python keeps one row of
    # scores per position only up to n_batch rows.
    llm = Llama(
        model_path=str(gguf_path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=n_ctx,
        verbose=False,
    )
    tokens = [int(t) for t in ids]

    def prefill():
        llm.reset()
        llm.eval(tokens)

    prefill_t = measure(prefill, repeat=repeat, min_seconds=0.0)
    llm.reset()
    llm.eval(tokens)
    steps = []
    for _ in range(new_tokens):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t0 = time.perf_counter()
        llm.eval([nxt])
        steps.append(time.perf_counter() - t0)
    return prefill_t, Timing(steps)


def random_llama(
    hidden=2048, intermediate=5632, layers=22, heads=32, kv_heads=4, vocab=32000, seed=0
):
    """A Llama-architecture model with random weights (TinyLlama-1.1B's shape by default),
    built directly in memory: config and an {HF name: float32 array} dict."""
    rng = np.random.default_rng(seed)
    hd = hidden // heads
    cfg = ModelConfig(
        architecture="llama",
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hd,
        max_position_embeddings=2048,
        norm_type="rmsnorm",
        norm_eps=1e-5,
        activation="silu",
        tie_word_embeddings=False,
        rope_theta=10000.0,
    )

    def w(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    tensors = {
        "model.embed_tokens.weight": w(vocab, hidden),
        "lm_head.weight": w(vocab, hidden),
        "model.norm.weight": np.ones(hidden, np.float32),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors.update(
            {
                p + "input_layernorm.weight": np.ones(hidden, np.float32),
                p + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
                p + "self_attn.q_proj.weight": w(heads * hd, hidden),
                p + "self_attn.k_proj.weight": w(kv_heads * hd, hidden),
                p + "self_attn.v_proj.weight": w(kv_heads * hd, hidden),
                p + "self_attn.o_proj.weight": w(hidden, heads * hd),
                p + "mlp.gate_proj.weight": w(intermediate, hidden),
                p + "mlp.up_proj.weight": w(intermediate, hidden),
                p + "mlp.down_proj.weight": w(hidden, intermediate),
            }
        )
    return cfg, tensors


def weight_bytes_per_token(cfg: ModelConfig) -> int:
    """fp32 bytes a decode step streams: every layer's matrices plus the LM head (the embedding
    lookup reads one row)."""
    h, i, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    attn = h * cfg.num_heads * hd * 2 + h * cfg.num_kv_heads * hd * 2
    per_layer = attn + 3 * h * i + 2 * h
    return 4 * (cfg.num_layers * per_layer + cfg.vocab_size * h + h)


def prefill_flops(cfg: ModelConfig, tokens: int) -> float:
    """FLOPs of a prefill of `tokens` tokens: every layer's matrices per token, causal
    attention (scores and weighted sum over half the square), the LM head for the last token."""
    weights_per_token = weight_bytes_per_token(cfg) / 4 - cfg.vocab_size * cfg.hidden_size
    attention = 2 * 2 * cfg.num_layers * cfg.num_heads * cfg.head_dim * tokens * tokens / 2
    return 2 * weights_per_token * tokens + attention + 2 * cfg.vocab_size * cfg.hidden_size


def load_torch_peer(source):
    """transformers' model of the same checkpoint, fp32 (GGUF files dequantized by it)."""
    import torch
    import transformers

    from pyengine.loaders import resolve

    path = resolve(source)
    if path.is_file():
        return transformers.AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, torch_dtype=torch.float32
        ).eval()
    return transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()


def run(
    source,
    threads_list,
    limits,
    *,
    peers=("torch", "llama.cpp"),
    quick=False,
    repeat=5,
    progress=None,
    model=None,
) -> list[Result]:
    """Prefill and decode tokens/s of a causal LM, batch 1, greedy."""
    from pyengine.loaders import resolve

    path = resolve(source)
    model = model or pyengine.load(path)
    prompt, new = (64, 16) if quick else (512, 128)
    prompt = min(prompt, model.context_length - new)  # small test models have short contexts
    ids = prompt_ids(model.vocab_size, prompt)
    name = path.stem if path.is_file() else path.name
    hf = load_torch_peer(path) if "torch" in peers else None
    gguf = path if path.is_file() else None
    results = []
    for t in threads_list:
        if progress:
            progress(f"decoder: {name} prefill/decode, {t} thread(s)")
        pre = with_threads(t, pyengine_prefill, model, ids, repeat)
        dec = with_threads(t, pyengine_decode, model, ids, new)
        pre_s, dec_s = {"pyengine": pre.samples}, {"pyengine": dec["timing"].samples}
        if hf is not None:
            p, d = with_threads(t, torch_prefill_and_decode, hf, ids, new, repeat)
            pre_s["torch"], dec_s["torch"] = p.samples, d.samples
        if "llama.cpp" in peers and gguf is not None:
            p, d = with_threads(t, llama_cpp_prefill_and_decode, gguf, ids, new, t, repeat)
            pre_s["llama.cpp"], dec_s["llama.cpp"] = p.samples, d.samples
        lim = limits[t]
        prefill_roof = lim.peak_gflops * 1e9 / (prefill_flops(model.config, prompt) / prompt)
        decode_roof = lim.read_gbs * 1e9 / weight_bytes_per_token(model.config)
        results.append(
            Result(
                "decoder",
                f"{name} prefill {prompt} tokens",
                t,
                "tok/s",
                prompt,
                pre_s,
                prefill_roof,
                "FMA peak",
            )
        )
        notes = [f"python overhead {100 * dec['python_overhead']:.1f}% of a decode step"]
        if "llama.cpp" in dec_s:
            notes.append("llama.cpp runs the GGUF's quantized weights natively")
        results.append(
            Result(
                "decoder",
                f"{name} decode {new} tokens",
                t,
                "tok/s",
                1,
                dec_s,
                decode_roof,
                "bandwidth",
                notes,
            )
        )
    return results


def run_random_llama(threads_list, limits, *, new=24, progress=None) -> list[Result]:
    """Decode tokens/s of a random-weight 1.1B Llama against its bandwidth roofline."""
    from pyengine.models.decoder import DecoderModel

    if progress:
        progress("decoder: building a random-weight 1.1B Llama (TinyLlama shape)")
    cfg, tensors = random_llama()
    model = DecoderModel(cfg, tensors)
    del tensors
    ids = prompt_ids(cfg.vocab_size, 32)
    results = []
    for t in threads_list:
        if progress:
            progress(f"decoder: 1.1B decode, {t} thread(s)")
        dec = with_threads(t, pyengine_decode, model, ids, new)
        roof = limits[t].read_gbs * 1e9 / weight_bytes_per_token(cfg)
        gb = weight_bytes_per_token(cfg) / 1e9
        results.append(
            Result(
                "decoder",
                f"random Llama-1.1B decode {new} tokens",
                t,
                "tok/s",
                1,
                {"pyengine": dec["timing"].samples},
                roof,
                "bandwidth",
                [f"{gb:.2f} GB of fp32 weights streamed per token"],
            )
        )
    return results


def with_threads(threads: int, fn, *args, **kwargs):
    previous = pyengine.get_num_threads()
    pyengine.set_num_threads(threads)
    try:
        with peer_threads(threads):
            return fn(*args, **kwargs)
    finally:
        pyengine.set_num_threads(previous)
