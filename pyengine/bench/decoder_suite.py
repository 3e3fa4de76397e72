"""Decoder workloads: prefill and decode tokens/s of a causal LM, pyengine (one model per
weight dtype) next to transformers on torch (fp32 and bf16, the same weights) and llama.cpp (the
same GGUF) at the same thread count."""

from __future__ import annotations

import time

import numpy as np

import pyengine
from pyengine import _C
from pyengine.bench.dtypes import (
    bf16_products_on_tiles,
    dtype_notes,
    load_models,
    short_name,
    workload_label,
)
from pyengine.bench.machine import last_level_cache_bytes
from pyengine.bench.peers import default_peers, peer_threads
from pyengine.bench.results import Result
from pyengine.bench.timing import Timing, measure
from pyengine.loaders import ModelConfig

# "auto" runs a GGUF's blocks as stored (SmolLM2: Q4_1, Q8_0 head); int8 and q4 (quantized at
# load) by --dtypes. The random 1.1B model is float32: its bf16 and quantized rows are the ones
# a user of a 1B model would run, and each one draws 4.4 GB of random weights again.
DEFAULT_DTYPES = ("auto", "bfloat16", "float32")
RANDOM_LLAMA_DTYPES = ("bfloat16", "int8", "q4")
# torch peer -> the torch dtype transformers loads the checkpoint in
TORCH_PEERS = {"torch": "float32", "torch-bf16": "bfloat16"}
# the roofline kind of a decode whose weights fit in the last-level cache: they are read from
# cache, so the measured DRAM bandwidth is no roof and its fraction may pass 100%
CACHE_RESIDENT = "bandwidth (cache-resident: weights fit in L3)"


def prompt_ids(vocab: int, length: int, seed: int = 0) -> np.ndarray:
    """A fixed pseudo-random prompt (the speed of a dense decoder does not depend on the ids)."""
    return np.random.default_rng(seed).integers(10, vocab - 10, length).astype(np.int32)


def pyengine_prefill(model, ids: np.ndarray, repeat: int) -> Timing:
    pads = np.zeros(1, np.int32)
    return measure(
        lambda: model.start(ids[None], pads, len(ids) + 1, "last"), repeat=repeat, min_seconds=0.0
    )


def pyengine_decode(model, ids: np.ndarray, new_tokens: int) -> dict:
    """Greedy decode of new_tokens after the prompt; per-step wall times, and the share of a
    step's time spent outside native kernels (Python overhead), the median over the steps so
    that one step the OS preempted does not stand for all."""
    pads = np.zeros(1, np.int32)
    logits = model.start(ids[None], pads, len(ids) + new_tokens, "last")
    steps, native = [], []
    for i in range(new_tokens):
        token = np.argmax(logits, axis=-1).astype(np.int32)
        k0, t0 = _C.kernel_seconds(), time.perf_counter()
        logits = model.step(token, pads, len(ids) + i)
        steps.append(time.perf_counter() - t0)
        native.append(_C.kernel_seconds() - k0)
    outside = [(wall - inside) / wall for wall, inside in zip(steps, native)]
    return {"timing": Timing(steps), "python_overhead": float(np.median(outside))}


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


def decode_weight_counts(cfg: ModelConfig) -> tuple[int, int]:
    """(matrix weights, norm weights) a decode step of a Llama-style decoder (gated MLP, no
    biases) reads: every layer's attention and MLP matrices plus the LM head, which is streamed
    in full even when tied to the embedding (it is packed as its own matrix); the two norms per
    layer and the final norm. The embedding lookup reads one row and is not counted."""
    h, i, hd = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    attn = h * cfg.num_heads * hd * 2 + h * cfg.num_kv_heads * hd * 2
    matrices = cfg.num_layers * (attn + 3 * h * i) + cfg.vocab_size * h
    norms = cfg.num_layers * 2 * h + h
    return matrices, norms


def weight_bytes_per_token(model) -> int:
    """Bytes of weights a decode step of `model` streams: every linear layer's packed weight
    as the model holds it (blocks, padding, the LM head; a quantized embedding tied to the head
    once), and the float32 norm weights: the numerator of the bandwidth roofline."""
    return model.matrix_weight_bytes + 4 * decode_weight_counts(model.config)[1]


def decode_roofline(streamed: int, read_gbs: float, weights: str) -> tuple[float, str, list[str]]:
    """(tokens/s, roofline kind, notes) of a decode step that reads `streamed` bytes of
    `weights` weights ("bf16") at the measured read bandwidth (a buffer far beyond the caches).
    Where they fit in the last-level cache, the step reads them from there: the row says so
    instead of presenting the fraction as a memory roofline."""
    size = f"{streamed / 1e9:.2f} GB" if streamed >= 1e9 else f"{streamed / 1e6:.1f} MB"
    notes = [f"{size} of {weights} weights read per token"]
    llc = last_level_cache_bytes()
    if llc is not None and streamed <= llc:
        notes.append(
            f"cache-resident: the weights fit in the {llc / 2**20:.0f} MiB L3, so the "
            "fraction of DRAM read bandwidth is no roofline (it may pass 100%)"
        )
        return read_gbs * 1e9 / streamed, CACHE_RESIDENT, notes
    return read_gbs * 1e9 / streamed, "bandwidth", notes


def prefill_flops(cfg: ModelConfig, tokens: int) -> float:
    """FLOPs of a prefill of `tokens` tokens: every layer's matrices per token, causal
    attention (scores and weighted sum over half the square), the LM head for the last token."""
    lm_head = cfg.vocab_size * cfg.hidden_size
    layer_matrices = decode_weight_counts(cfg)[0] - lm_head
    attention = 2 * 2 * cfg.num_layers * cfg.num_heads * cfg.head_dim * tokens * tokens / 2
    return 2 * layer_matrices * tokens + attention + 2 * lm_head


def load_torch_peer(source, dtype: str = "float32"):
    """transformers' model of the same checkpoint in `dtype` ("float32", "bfloat16"; GGUF
    files dequantized by it). Loaded, not cast: from_pretrained keeps the rotary inv_freq
    buffer in float32, which model.to(torch.bfloat16) would round (wrong angles at long
    positions)."""
    import torch
    import transformers

    from pyengine.loaders import resolve

    path = resolve(source)
    torch_dtype = getattr(torch, dtype)
    if path.is_file():
        return transformers.AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, torch_dtype=torch_dtype
        ).eval()
    return transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch_dtype).eval()


def run(
    source,
    threads_list,
    limits,
    *,
    dtypes=DEFAULT_DTYPES,
    peers=None,
    quick=False,
    repeat=5,
    progress=None,
    models=None,
) -> list[Result]:
    """Prefill and decode tokens/s of a causal LM, batch 1, greedy: one pyengine model per
    weight dtype in `dtypes` (`models` may hold ready ones, {dtype: model}; the others are
    loaded from `source`). `peers`: of "torch", "torch-bf16", "llama.cpp" (default: those
    installed, torch-bf16 only on a CPU with bf16 hardware). Each peer is measured once per
    thread count and its samples appear in every dtype's Result, so all ratios of a run share
    one peer measurement."""
    from pyengine.loaders import resolve

    peers = default_peers("decoder") if peers is None else peers
    path = resolve(source)
    name = path.stem if path.is_file() else path.name
    models = load_models(
        path, dtypes, models, progress=progress, message=f"decoder: loading {name}"
    )
    first = next(iter(models.values()))
    cfg = first.config
    prompt, new = (64, 16) if quick else (512, 128)
    prompt = min(prompt, first.context_length - new)  # small test models have short contexts
    ids = prompt_ids(first.vocab_size, prompt)
    hf = {}
    for peer, torch_dtype in TORCH_PEERS.items():
        if peer in peers:
            if progress:
                progress(f"decoder: loading {name} in transformers ({torch_dtype})")
            hf[peer] = load_torch_peer(path, torch_dtype)
    gguf = path if path.is_file() else None
    prefill_on_tiles = "bfloat16" in models and bf16_products_on_tiles(prompt)
    results = []
    for t in threads_list:
        if progress:
            progress(f"decoder: {name} prefill/decode, {t} thread(s)")
        # the peers, once: their sample lists are shared by every dtype's Result below
        peer_pre, peer_dec = {}, {}
        for peer, hf_model in hf.items():
            p, d = with_threads(t, torch_prefill_and_decode, hf_model, ids, new, repeat)
            peer_pre[peer], peer_dec[peer] = p.samples, d.samples
        if "llama.cpp" in peers and gguf is not None:
            p, d = with_threads(t, llama_cpp_prefill_and_decode, gguf, ids, new, t, repeat)
            peer_pre["llama.cpp"], peer_dec["llama.cpp"] = p.samples, d.samples
        fma_roof = limits[t].peak_gflops * 1e9 / (prefill_flops(cfg, prompt) / prompt)
        prefills, decodes = [], []
        for dtype, model in models.items():
            if progress and len(models) > 1:
                progress(f"decoder: {name} pyengine with {dtype} weights, {t} thread(s)")
            pre = with_threads(t, pyengine_prefill, model, ids, repeat)
            dec = with_threads(t, pyengine_decode, model, ids, new)
            pre_notes = dtype_notes(dtype, peer_pre, model)
            if dtype == "bfloat16" and prefill_on_tiles:
                tiles = limits[t].tile_peak_gflops
                flops_per_token = prefill_flops(cfg, prompt) / prompt
                prefill_roof = tiles * 1e9 / flops_per_token if tiles else None
                prefill_kind = "AMX bf16 peak" if tiles else None
            else:
                prefill_roof, prefill_kind = fma_roof, "FMA peak"
            prefills.append(
                Result(
                    "decoder",
                    workload_label(f"{name} prefill {prompt} tokens", dtype, model),
                    t,
                    "tok/s",
                    prompt,
                    {"pyengine": pre.samples, **peer_pre},
                    prefill_roof,
                    prefill_kind,
                    pre_notes,
                )
            )
            dec_notes = [f"python overhead {100 * dec['python_overhead']:.1f}% of a decode step"]
            dec_notes += dtype_notes(dtype, peer_dec, model)
            if "llama.cpp" in peer_dec:
                dec_notes.append("llama.cpp runs the GGUF's quantized weights natively")
            dec_roof, dec_kind, roof_notes = decode_roofline(
                weight_bytes_per_token(model), limits[t].read_gbs, short_name(dtype, model)
            )
            decodes.append(
                Result(
                    "decoder",
                    workload_label(f"{name} decode {new} tokens", dtype, model),
                    t,
                    "tok/s",
                    1,
                    {"pyengine": dec["timing"].samples, **peer_dec},
                    dec_roof,
                    dec_kind,
                    dec_notes + roof_notes,
                )
            )
        results += prefills + decodes  # each phase's dtypes side by side
    return results


def run_random_llama(
    threads_list, limits, *, dtypes=RANDOM_LLAMA_DTYPES, new=24, progress=None
) -> list[Result]:
    """Decode tokens/s of a random-weight 1.1B Llama against its bandwidth roofline, per weight
    dtype. One model at a time: the random float32 tensors (4.4 GB) are drawn again for each
    dtype (the same seed, the same weights) because packing consumes them."""
    from pyengine.models.decoder import DecoderModel

    results = []
    for dtype in dtypes:
        if progress:
            progress(f"decoder: building a random-weight 1.1B Llama (TinyLlama shape), {dtype}")
        cfg, tensors = random_llama()
        model = DecoderModel(cfg, tensors, dtype=dtype)
        del tensors
        ids = prompt_ids(cfg.vocab_size, 32)
        streamed = weight_bytes_per_token(model)
        for t in threads_list:
            if progress:
                progress(f"decoder: 1.1B decode, {dtype} weights, {t} thread(s)")
            dec = with_threads(t, pyengine_decode, model, ids, new)
            roof, kind, notes = decode_roofline(
                streamed, limits[t].read_gbs, short_name(dtype, model)
            )
            results.append(
                Result(
                    "decoder",
                    workload_label(f"random Llama-1.1B decode {new} tokens", dtype, model),
                    t,
                    "tok/s",
                    1,
                    {"pyengine": dec["timing"].samples},
                    roof,
                    kind,
                    notes,
                )
            )
        del model
    results.sort(key=lambda r: r.threads)  # stable: each thread count's dtypes side by side
    return results


def with_threads(threads: int, fn, *args, **kwargs):
    previous = pyengine.get_num_threads()
    pyengine.set_num_threads(threads)
    try:
        with peer_threads(threads):
            return fn(*args, **kwargs)
    finally:
        pyengine.set_num_threads(previous)
