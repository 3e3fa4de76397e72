"""Helpers for the tests that drive a running server: start it, read its metrics, wait until
it is idle. Traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import re
import time

CONTEXT = 4096  # the served model's context length


def start_server(model_path, *extra):
    """Context manager: the server's base URL once /health answers; stopped at exit."""
    from pyengine.bench.serve_suite import (
        free_port,
        pyengine_argv,
        pyengine_env,
        pyengine_root,
        server_process,
    )

    port = free_port()
    cmd = pyengine_argv(model_path, 1, "auto", port) + ["--kv-cache-gb", "0.02", *extra]
    return server_process(cmd, port, "/health", pyengine_env(), pyengine_root())


def metrics(base: str) -> dict[str, float]:
    """The server's unlabelled Prometheus samples, name -> value."""
    import httpx

    text = httpx.get(base + "/metrics", timeout=10).text
    return {m[1]: float(m[2]) for m in re.finditer(r"^([a-z_]+) ([-+0-9.e]+)$", text, re.M)}


def wait_idle(base: str, timeout: float = 30.0) -> dict[str, float]:
    """Metrics once no sequence runs, none waits, and no KV block is held (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(base)
        idle = (
            m["pyengine_running_sequences"] == 0
            and m["pyengine_queue_length"] == 0
            and m["pyengine_kv_blocks_used"] == 0
        )
        if idle or time.monotonic() > deadline:
            return m
        time.sleep(0.1)
