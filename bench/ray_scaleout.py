"""Scale-out layouts on one machine, measured in one run: Ray replicas x 1 thread against one
process with every thread, for decode (served completions) and for embeddings (Ray Data).

    python bench/ray_scaleout.py [--model smollm2-135m-instruct] [--embedder all-minilm-l6-v2]
                                 [--clients 16] [--requests 64] [--tokens 64] [--texts 8000]

Decode: `--clients` concurrent clients send `--requests` completions of `--tokens` tokens each
(ignore_eos, so every request does the same work) to
  - `pyengine serve --threads N` (one process, N = the machine's cores),
  - Ray Serve with 1 replica x 1 thread, and with N replicas x 1 thread;
the figure is generated tokens per second of wall time, all clients together.
Embeddings: `--texts` short sentences embedded
  - in this process with `encode()` at N threads (batches of 256),
  - by a Ray Data job (map_batches(pyengine.ray.Embedder), batches of 256) with 1 and with N
    actors x 1 thread; the job's wall time includes starting its actors (about a model load).
Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import time

import httpx

import pyengine
from pyengine.bench.machine import describe_machine
from pyengine.bench.serve_suite import (
    free_port,
    pyengine_argv,
    pyengine_env,
    pyengine_root,
    server_process,
)


def drive(base: str, model: str, clients: int, requests: int, tokens: int) -> float:
    """Generated tokens per second with `clients` concurrent clients."""
    body = {
        "model": model,
        "prompt": "Once upon a time",
        "max_tokens": tokens,
        "temperature": 0.0,
        "ignore_eos": True,
    }

    def one(_):
        r = httpx.post(base + "/v1/completions", json=body, timeout=600)
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))  # warm-up: plans, caches, connections
        start = time.perf_counter()
        generated = sum(pool.map(one, range(requests)))
    return generated / (time.perf_counter() - start)


def decode_rows(args, cores: int) -> list[tuple[str, float]]:
    rows = []
    port = free_port()
    cmd = pyengine_argv(args.model, cores, "auto", port) + ["--kv-cache-gb", "0.5"]
    with server_process(cmd, port, "/health", pyengine_env(), pyengine_root()) as base:
        rows.append(
            (
                f"1 process x {cores} threads",
                drive(base, args.model, args.clients, args.requests, args.tokens),
            )
        )
    import ray
    from ray import serve

    import pyengine.ray as pr

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        for replicas in sorted({1, cores}):
            serve.run(
                pr.deployment(
                    args.model,
                    num_replicas=replicas,
                    threads_per_replica=1,
                    kv_cache_gb=0.5,
                    model_name=args.model,
                ),
                route_prefix="/",
            )
            rate = drive(
                f"http://127.0.0.1:{port}", args.model, args.clients, args.requests, args.tokens
            )
            rows.append((f"Ray {replicas} replica(s) x 1 thread", rate))
            serve.delete("default")
    finally:
        serve.shutdown()
    return rows


def embedding_rows(args, cores: int) -> list[tuple[str, float]]:
    import ray

    import pyengine.ray as pr

    texts = [
        f"sentence {i}: the {'cat' if i % 2 else 'weather'} is fine today"
        for i in range(args.texts)
    ]
    model = pyengine.load(args.embedder, threads=cores)
    model.encode(texts[:256])
    start = time.perf_counter()
    for i in range(0, len(texts), 256):
        model.encode(texts[i : i + 256])
    rows = [(f"1 process x {cores} threads (encode)", len(texts) / (time.perf_counter() - start))]
    for actors in sorted({1, cores}):
        ds = ray.data.from_items([{"text": t} for t in texts]).materialize()
        start = time.perf_counter()
        ds.map_batches(
            pr.Embedder,
            fn_constructor_kwargs={"model": args.embedder, "threads": 1},
            concurrency=actors,
            batch_size=256,
            num_cpus=1,
        ).materialize()
        rows.append(
            (f"Ray Data {actors} actor(s) x 1 thread", len(texts) / (time.perf_counter() - start))
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--embedder", default="all-minilm-l6-v2")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--texts", type=int, default=8000)
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(describe_machine())
    decode = decode_rows(args, cores)
    embed = embedding_rows(args, cores)
    print(f"\ndecode, {args.clients} clients x {args.tokens} tokens ({args.model}):")
    for name, rate in decode:
        print(f"  {name:34s} {rate:8.1f} tokens/s  {rate / decode[0][1]:5.2f}x")
    print(f"\nembeddings, {args.texts} sentences ({args.embedder}):")
    for name, rate in embed:
        print(f"  {name:34s} {rate:8.1f} sentences/s  {rate / embed[0][1]:5.2f}x")


if __name__ == "__main__":
    main()
