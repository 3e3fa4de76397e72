"""Soak: many requests of every shape through the server, then the books must balance.

The mix (fixed by a seed): chat and completions, streamed or not, prompts of 1-60 words,
1-24 new tokens, greedy or sampled, n = 1 or 2, stop strings, a tenth of the streams
abandoned by their client after two chunks, and one request in 50 longer than the context
(refused with a 400 in OpenAI's error shape). Every other request must be answered in full;
after a warm-up the server's resident memory may grow by at most 2%, and at
the end every KV block is back in the pool, open files are back to their warm-up count, and the
Python threads never exceed one per client beyond the idle server's.

Quick in CI (a 1000-request warm-up, then PYENGINE_SOAK_REQUESTS=240 requests from 8
clients). On demand:
    PYENGINE_SOAK_REQUESTS=10000 pytest tests/reliability/test_soak.py -s
    PYENGINE_SOAK_CLIENTS=64 PYENGINE_SOAK_SECONDS=600 pytest tests/reliability/test_soak.py -s
(the second runs for a duration instead of a count). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import os
import random
import time

import pytest
from served import CONTEXT, metrics, wait_idle

httpx = pytest.importorskip("httpx")

REQUESTS = int(os.environ.get("PYENGINE_SOAK_REQUESTS", "240"))
CLIENTS = int(os.environ.get("PYENGINE_SOAK_CLIENTS", "8"))
SECONDS = float(os.environ.get("PYENGINE_SOAK_SECONDS", "0"))
# The warm-up fills the bounded caches: the step plans (one per (tokens, rows) shape, 64 kept,
# measured ~20 KB each for this 2-layer model) take ~1000 requests of this mix to fill.
WARMUP = int(os.environ.get("PYENGINE_SOAK_WARMUP", "1000"))
WORDS = "the quick brown fox jumps over a lazy dog hello world once upon time".split()


def request_spec(i: int) -> dict:
    rng = random.Random(i)
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 60)))
    stream = rng.random() < 0.5
    body = {"max_tokens": rng.randint(1, 24), "stream": stream}
    if rng.random() < 0.5:
        body["temperature"], body["seed"] = 0.8, i
    else:
        body["temperature"] = 0.0
    if rng.random() < 0.15:
        body["n"] = 2
    if rng.random() < 0.15:
        body["stop"] = [rng.choice(WORDS), "\n"]
    if rng.random() < 0.5:
        route = "/v1/chat/completions"
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        route = "/v1/completions"
        body["prompt"] = prompt
    too_long = rng.random() < 0.02
    if too_long:
        body["max_tokens"] = CONTEXT
    return {
        "route": route,
        "body": body,
        "abandon": stream and rng.random() < 0.1,
        "too_long": too_long,
    }


def run_one(client: httpx.Client, base: str, i: int) -> str:
    """'ok', 'abandoned', or a description of what went wrong."""
    spec = request_spec(i)
    url, body = base + spec["route"], spec["body"]
    if spec["too_long"]:
        r = client.post(url, json=body)
        error = r.json().get("error", {}) if r.status_code == 400 else {}
        ok = error.get("type") == "invalid_request_error" and "context length" in error["message"]
        return "refused" if ok else f"{r.status_code} for a request over the context: {r.text}"
    if not body["stream"]:
        r = client.post(url, json=body)
        if r.status_code != 200:
            return f"{r.status_code}: {r.text[:200]}"
        choices = r.json()["choices"]
        reasons = {c["finish_reason"] for c in choices}
        if len(choices) != body.get("n", 1) or not reasons <= {"stop", "length"}:
            return f"incomplete answer: {r.text[:200]}"
        return "ok"
    with client.stream("POST", url, json=body) as r:
        if r.status_code != 200:
            return f"{r.status_code}: {r.read()[:200]!r}"
        chunks, done = 0, False
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            json.loads(line[6:])
            chunks += 1
            if spec["abandon"] and chunks >= 2:
                return "abandoned"  # leaving the block closes the connection mid-stream
        return "ok" if done else f"stream ended without [DONE] after {chunks} chunks"


def drive(base: str, indices, clients: int, until: float | None = None) -> dict[str, int]:
    """Sends requests `indices` from `clients` threads (each with its own connection pool);
    with `until`, keeps cycling through them until that monotonic time."""
    indices = list(indices)

    def worker(w: int) -> collections.Counter:
        seen: collections.Counter = collections.Counter()
        with httpx.Client(timeout=120) as client:
            k = w
            while (k < len(indices)) if until is None else (time.monotonic() < until):
                seen[run_one(client, base, indices[k % len(indices)])] += 1
                k += clients
        return seen

    with cf.ThreadPoolExecutor(clients) as pool:
        return dict(sum(pool.map(worker, range(clients)), collections.Counter()))


def settled(base: str, key: str, limit: float, timeout: float = 15.0) -> float:
    """The metric once it is at or below `limit` (connections close a little after their
    clients do), or its value at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = metrics(base)[key]
        if value <= limit or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_soak(served_gguf):
    base, _ = served_gguf
    initial_threads = metrics(base)["pyengine_python_threads"]
    warm = drive(base, range(WARMUP), CLIENTS)
    assert set(warm) <= {"ok", "abandoned", "refused"}, warm
    wait_idle(base)
    time.sleep(1.0)  # connections of the warm-up close
    before = metrics(base)

    start = time.monotonic()
    outcomes: collections.Counter = collections.Counter()
    resident = [before["process_resident_memory_bytes"]]
    threads = [before["pyengine_python_threads"]]
    chunks = 10
    for c in range(chunks):  # sampled while idle after each tenth of the run
        if SECONDS > 0:
            until = start + SECONDS * (c + 1) / chunks
            lo = WARMUP + c * 10**6
            outcomes.update(drive(base, range(lo, lo + 10**6), CLIENTS, until))
        else:
            lo = WARMUP + REQUESTS * c // chunks
            outcomes.update(drive(base, range(lo, WARMUP + REQUESTS * (c + 1) // chunks), CLIENTS))
        m = wait_idle(base)
        resident.append(m["process_resident_memory_bytes"])
        threads.append(m["pyengine_python_threads"])
    elapsed = time.monotonic() - start
    after = wait_idle(base)
    fds = settled(base, "process_open_fds", before["process_open_fds"])
    # worker threads are pooled (Starlette's thread pool: one per request running sync code at
    # once, retired only when later work arrives): their number follows the concurrency, at
    # most one per client, never the request count
    thread_bound = initial_threads + CLIENTS
    end_threads = settled(base, "pyengine_python_threads", thread_bound)
    after = metrics(base)

    served = sum(outcomes.values())
    growth = after["process_resident_memory_bytes"] / before["process_resident_memory_bytes"] - 1
    heap = ""
    if "pyengine_python_heap_bytes" in before:
        heap = (
            f", Python heap {before['pyengine_python_heap_bytes'] / 2**20:.1f} -> "
            f"{after['pyengine_python_heap_bytes'] / 2**20:.1f} MiB"
        )
    print(
        f"\nsoak: {served} requests from {CLIENTS} clients in {elapsed:.0f} s after a "
        f"{WARMUP}-request warm-up ({served / elapsed:.1f}/s), outcomes {dict(outcomes)}; "
        f"resident memory {before['process_resident_memory_bytes'] / 2**20:.1f} -> "
        f"{after['process_resident_memory_bytes'] / 2**20:.1f} MiB ({100 * growth:+.2f}%; "
        f"by tenths: {' '.join(f'{r / 2**20:.1f}' for r in resident)}), open fds "
        f"{before['process_open_fds']:.0f} -> {fds:.0f}, Python threads {initial_threads:.0f} "
        f"at start, by tenths {' '.join(f'{t:.0f}' for t in threads)} -> {end_threads:.0f}"
        f"{heap}"
    )
    failures = {k: v for k, v in outcomes.items() if k not in ("ok", "abandoned", "refused")}
    assert not failures, failures
    assert after["pyengine_kv_blocks_used"] == 0
    assert after["pyengine_running_sequences"] == 0 and after["pyengine_queue_length"] == 0
    assert growth <= 0.02
    assert fds <= before["process_open_fds"]
    assert max(threads) <= thread_bound and end_threads <= thread_bound
