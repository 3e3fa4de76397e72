"""Faults around a running server: it stays up and keeps answering everyone else.

- a client that disconnects mid-stream, and one that disconnects while waiting for a whole
  answer: their sequences are cancelled and their KV blocks return to the pool;
- a request that can never fit the KV cache: a 400 naming the limit, never a wait forever;
- clients that send garbage, or half a body and then nothing;
- the model file truncated, then deleted, under the running server: the weights were read at
  load, so answers stay the same.
Traffic goes to 127.0.0.1 only; each test is bounded in time.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
from served import CONTEXT, metrics, start_server, wait_idle

httpx = pytest.importorskip("httpx")

GREEDY = {"prompt": "hello world", "max_tokens": 12, "temperature": 0.0}


def complete(base: str, **body) -> httpx.Response:
    return httpx.post(base + "/v1/completions", json={**GREEDY, **body}, timeout=60)


def cancelled(base: str) -> float:
    text = httpx.get(base + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith('pyengine_finished_sequences_total{reason="cancelled"}'):
            return float(line.split()[-1])
    return 0.0


def test_clients_leaving_mid_answer_free_their_blocks(served_gguf):
    base, _ = served_gguf
    before = cancelled(base)
    # 4000 tokens: seconds of work for this small model, long after the clients have left
    body = {
        "prompt": "once upon",
        "max_tokens": CONTEXT - 96,
        "temperature": 0.0,
        "ignore_eos": True,
    }
    # a stream left after two chunks
    with httpx.stream("POST", base + "/v1/completions", json={**body, "stream": True}) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 2:
                break
    # a whole answer waited for, then abandoned: the client times out and closes its socket
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(base + "/v1/completions", json=body, timeout=0.3)
    m = wait_idle(base)
    assert m["pyengine_kv_blocks_used"] == 0 and m["pyengine_running_sequences"] == 0
    assert cancelled(base) >= before + 2
    assert complete(base).status_code == 200


def test_garbage_and_stalled_clients_do_not_stop_the_server(served_gguf):
    base, _ = served_gguf
    port = int(base.rsplit(":", 1)[1])
    garbage = socket.create_connection(("127.0.0.1", port))
    garbage.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(512) + b"\r\n\r\n")  # TLS-ish noise
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100000\r\n\r\n{"prompt": "hel'
    )
    try:
        start = time.monotonic()
        r = complete(base)
        assert r.status_code == 200 and time.monotonic() - start < 30
    finally:
        garbage.close()
        stalled.close()
    assert complete(base).status_code == 200


def test_a_request_larger_than_the_whole_cache_is_refused(tmp_path):
    import fuzz_seeds

    path = fuzz_seeds.write_gguf_seed(tmp_path / "model.gguf", context=4096)
    # 0.0002 GiB: 6 blocks of 64 tokens (32 KiB a block for this model): 384 tokens at most
    with start_server(path, "--kv-cache-gb", "0.0002") as base:
        r = complete(base, prompt="hello " * 200, max_tokens=600)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and "cache" in error["message"], error
        assert complete(base).status_code == 200


def test_the_model_file_truncated_then_deleted_under_the_server(served_gguf):
    base, path = served_gguf
    expected = complete(base).json()["choices"][0]["text"]
    with open(path, "r+b") as f:
        f.truncate(100)
    assert complete(base).json()["choices"][0]["text"] == expected
    os.remove(path)
    assert complete(base).json()["choices"][0]["text"] == expected
    assert httpx.get(base + "/health", timeout=10).status_code == 200
    assert metrics(base)["pyengine_kv_blocks_used"] == 0
