"""Perplexity of SmolLM2-135M-Instruct per pyengine weight dtype on the default text (this
Python's LICENSE.txt), with llama.cpp (llama-cpp-python, when installed) on the same GGUF and
the same token windows, scored by the same code (pyengine.generation.perplexity.score_windows).

    python bench/perplexity.py [DTYPE ...] [--window 512] [--threads N] [--text FILE]
                               [--decode-path]

--decode-path scores pyengine one token per step (its decode kernels: int8-quantized
activations for quantized weights) instead of whole windows (the many-row path).

DTYPE: any dtype pyengine.load takes (default: float32 bfloat16); one that load refuses is
reported in its row and the others still run. llama.cpp runs the GGUF's own weight format.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

import pyengine
from pyengine.bench.machine import describe_machine
from pyengine.bench.peers import peer_versions
from pyengine.generation.perplexity import default_text_path, perplexity, score_windows
from pyengine.loaders import resolve

MODEL = "smollm2-135m-instruct"


def llama_cpp_logits(gguf_path, window: int, threads: int):
    """logits_of(ids) for score_windows: llama.cpp's logits of every position, from an empty
    KV cache, fed exactly our ids (no BOS added)."""
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(gguf_path),
        n_ctx=window,
        n_batch=window,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=True,
        verbose=False,
    )

    def logits_of(ids: np.ndarray) -> np.ndarray:
        llm.reset()
        llm.eval(ids.tolist())
        return llm.scores[: len(ids)]  # [n, vocab] float32

    return logits_of, llm


def row(name, weights, r, load_s) -> str:
    rate = r.tokens_scored / max(r.seconds, 1e-9)
    return (
        f"| {name:<10} | {weights:<9} | {r.ppl:10.4f} | {r.nll:.5f} | {r.tokens_scored:6d} "
        f"| {r.windows:7d} | {load_s:6.1f} | {r.seconds:6.1f} | {rate:8.1f} |"
    )


def decode_path_logits(model):
    """logits_of(ids) for score_windows through pyengine's decode path: one token per step
    (few-row products: quantized weights meet int8-quantized activations), from an empty
    cache, as a generation would compute them."""

    def logits_of(ids: np.ndarray) -> np.ndarray:
        no_pad = np.zeros(1, np.int32)
        out = [model.start(ids[None, :1], no_pad, len(ids), "last").copy()]
        for i in range(1, len(ids)):
            out.append(model.step(ids[i : i + 1], no_pad, i).copy())
        return np.concatenate(out)

    return logits_of


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dtypes", nargs="*", default=["float32", "bfloat16"])
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--text", default=None)
    parser.add_argument(
        "--decode-path",
        action="store_true",
        help="score pyengine one token per step (the decode kernels) instead of whole windows",
    )
    args = parser.parse_args()
    if args.threads is not None:
        pyengine.set_num_threads(args.threads)
    threads = pyengine.get_num_threads()
    path = args.text or default_text_path()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    machine = describe_machine()
    print(f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {machine['isa_level']}")
    print("# " + ", ".join(f"{k} {v}" for k, v in peer_versions().items()))
    print(f"# {MODEL} on {path} ({len(text)} chars), window {args.window}, {threads} threads")
    print(
        "| engine     | weights   | perplexity | nll/token | tokens | windows | load s "
        "| eval s | tokens/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ids = None
    for dtype in args.dtypes:
        start = time.perf_counter()
        try:
            model = pyengine.load(MODEL, dtype=dtype)
        except ValueError as e:
            print(f"| pyengine   | {dtype:<9} | not run: {e} |")
            continue
        load_s = time.perf_counter() - start
        if ids is None:
            ids = np.asarray(model.tokenizer.encode(text).ids, np.int32)
        if args.decode_path:
            r = score_windows(decode_path_logits(model), ids, args.window)
        else:
            r = perplexity(model, text, window=args.window)
        print(row("pyengine", dtype, r, load_s), flush=True)
        del model
    if importlib.util.find_spec("llama_cpp") is None:
        print("# llama.cpp: not installed (pip install llama-cpp-python)")
        return
    if ids is None:
        print("# llama.cpp: not run (no pyengine row tokenized the text)")
        return
    gguf = resolve(MODEL)
    start = time.perf_counter()
    logits_of, _llm = llama_cpp_logits(gguf, args.window, threads)
    load_s = time.perf_counter() - start
    r = score_windows(logits_of, ids, args.window)
    print(row("llama.cpp", "gguf", r, load_s))
    print(f"# llama.cpp ran {gguf.name} (its own weight format) on pyengine's token ids")


if __name__ == "__main__":
    main()
