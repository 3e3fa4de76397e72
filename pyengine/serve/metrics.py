"""Prometheus metrics of a server: one registry per app (several apps in one process, as in the
tests, do not collide). The engine reports tokens, finished requests and its state after each
step; the app counts HTTP requests by route and status."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# Latency buckets, seconds: from a fast decode step (a few ms) to a long queue wait.
_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        # process_resident_memory_bytes, process_open_fds, ...: what a soak watches for leaks
        ProcessCollector(registry=r)
        Gauge(
            "pyengine_python_threads", "Python threads alive in the server", registry=r
        ).set_function(threading.active_count)
        if os.environ.get("PYENGINE_TRACEMALLOC"):
            # diagnosis of memory growth (slows every allocation): the Python heap alone, to
            # tell objects kept alive from the allocator's own growth in resident memory
            tracemalloc.start()
            Gauge(
                "pyengine_python_heap_bytes", "Python heap (tracemalloc), if traced", registry=r
            ).set_function(lambda: tracemalloc.get_traced_memory()[0])
        self.requests = Counter(
            "pyengine_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter("pyengine_prompt_tokens", "Prompt tokens admitted", registry=r)
        self.cached_tokens = Counter(
            "pyengine_cached_prompt_tokens",
            "Prompt tokens reused from the prefix cache",
            registry=r,
        )
        self.generated_tokens = Counter(
            "pyengine_generation_tokens", "Tokens generated", registry=r
        )
        self.finished_requests = Counter(
            "pyengine_finished_sequences", "Sequences ended, by reason", ["reason"], registry=r
        )
        self.queue_length = Gauge("pyengine_queue_length", "Requests waiting to start", registry=r)
        self.running = Gauge("pyengine_running_sequences", "Sequences in the batch", registry=r)
        self.kv_blocks_used = Gauge("pyengine_kv_blocks_used", "KV blocks held", registry=r)
        self.kv_blocks_total = Gauge(
            "pyengine_kv_blocks_total", "KV blocks in the pool", registry=r
        )
        self.ttft = Histogram(
            "pyengine_time_to_first_token_seconds",
            "From submission to the first generated token",
            buckets=_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "pyengine_inter_token_latency_seconds",
            "Between consecutive tokens of a sequence",
            buckets=_BUCKETS,
            registry=r,
        )
        self._last_token_at: dict[int, float] = {}

    # ---- called by the engine (its thread) ---------------------------------------------------

    def token(self, req) -> None:
        now = time.perf_counter()
        self.generated_tokens.inc()
        last = self._last_token_at.get(req.id)
        if last is None:
            self.ttft.observe(now - req.submitted)
            self.prompt_tokens.inc(len(req.prompt))
            self.cached_tokens.inc(req.cached_tokens)
        else:
            self.itl.observe(now - last)
        self._last_token_at[req.id] = now

    def finished(self, req) -> None:
        self.finished_requests.labels(req.finish_reason or "unknown").inc()
        self._last_token_at.pop(req.id, None)

    def engine_state(self, engine) -> None:
        self.queue_length.set(len(engine.waiting))
        self.running.set(len(engine.running))
        self.kv_blocks_used.set(engine.blocks.used)
        self.kv_blocks_total.set(engine.blocks.n_blocks)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
