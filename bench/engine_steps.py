"""The serving engine's decode steps, in one process: aggregate tokens/s of B sequences decoding
together vs one alone, the cost of deterministic=True, and the Python overhead per step (wall
time minus time inside kernels, median over steps).

    python bench/engine_steps.py [--model smollm2-135m-instruct] [--dtype bfloat16] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import pyengine
from pyengine import _C
from pyengine.serve.engine import Engine, SamplingParams


def decode_rate(model, batch: int, deterministic: bool, new_tokens: int) -> tuple[float, float]:
    """(generated tokens/s over the decode steps, median Python share of a step)."""
    engine = Engine(model, kv_cache_gb=0.5, max_batch=max(batch, 1), deterministic=deterministic)
    rng = np.random.default_rng(0)
    for _ in range(batch):
        ids = rng.integers(100, 1000, int(rng.integers(20, 120))).astype(np.int32)
        engine.submit(ids, SamplingParams(max_tokens=new_tokens, ignore_eos=True))
    while any(r.prefilling for r in engine.running) or engine.waiting or engine._inbox:
        engine.step()
    walls, shares, tokens = [], [], 0
    while not engine.idle:
        n = len(engine.running)
        k0, t0 = _C.kernel_seconds(), time.perf_counter()
        engine.step()
        wall, kern = time.perf_counter() - t0, _C.kernel_seconds() - k0
        walls.append(wall)
        shares.append((wall - kern) / wall)
        tokens += n
    return tokens / sum(walls), statistics.median(shares)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    model = pyengine.load(args.model, dtype=args.dtype, threads=args.threads)
    decode_rate(model, 2, False, 4)  # warm-up
    print(f"# {args.model} {args.dtype}, {args.threads} thread(s), {args.new_tokens} new tokens")
    for b in (int(x) for x in args.batches.split(",")):
        fast, py_fast = decode_rate(model, b, False, args.new_tokens)
        det, py_det = decode_rate(model, b, True, args.new_tokens)
        print(
            f"batch {b:3d}: {fast:7.1f} tok/s (python {py_fast:.1%} of a step); deterministic "
            f"{det:7.1f} tok/s ({det / fast:.2f}x, python {py_det:.1%})"
        )


if __name__ == "__main__":
    main()
