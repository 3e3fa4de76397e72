"""`pyengine serve` as a user runs it: a subprocess on a free loopback port, driven by the
official `openai` client (chat, completions, streaming, n, logprobs, embeddings) and by raw HTTP
for the error cases; a client that leaves mid-stream frees its cache blocks."""

from __future__ import annotations

import re
import sys
import time

import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server(tiny_llama_folder, minilm_path):
    """The server as a user starts it (the benchmark's launcher: a subprocess on a free port,
    ready once /health answers, stopped however the tests end)."""
    from pyengine.bench.serve_suite import free_port, pyengine_env, pyengine_root, server_process

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "pyengine.cli",
        "serve",
        "--model",
        str(tiny_llama_folder),
        "--embedding-model",
        "all-minilm-l6-v2",
        "--port",
        str(port),
        "--threads",
        "1",
        "--kv-cache-gb",
        "0.01",
        "--max-batch",
        "8",
        "--max-queue",
        "64",
    ]
    with server_process(cmd, port, "/health", pyengine_env(), pyengine_root()) as base:
        yield base, str(tiny_llama_folder)


@pytest.fixture(scope="module")
def client(server):
    base, _ = server
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_models(client, server):
    ids = {m.id for m in client.models.list().data}
    assert server[1] in ids and len(ids) == 2


def test_chat_completion_and_usage(client, server):
    r = client.chat.completions.create(
        model=server[1],
        messages=[{"role": "user", "content": "Once upon"}],
        max_tokens=8,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0
    again = client.chat.completions.create(
        model=server[1],
        messages=[{"role": "user", "content": "Once upon"}],
        max_tokens=8,
        temperature=0,
    )
    assert again.choices[0].message.content == choice.message.content  # greedy
    assert again.usage.prompt_tokens_details.cached_tokens >= 0


def test_chat_stream_joins_to_the_whole_answer(client, server):
    kw = dict(
        model=server[1],
        messages=[{"role": "user", "content": "a b c"}],
        max_tokens=12,
        temperature=0,
    )
    whole = client.chat.completions.create(**kw).choices[0].message.content
    pieces, reasons, usage = [], [], None
    for chunk in client.chat.completions.create(
        **kw, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            reasons.append(c.finish_reason)
    assert "".join(pieces) == whole
    assert reasons[-1] in ("stop", "length") and usage is not None


def test_completions_n_seed_logprobs(client, server):
    kw = dict(
        model=server[1],
        prompt="Once upon a time",
        max_tokens=6,
        temperature=1.0,
        seed=5,
        n=3,
        logprobs=2,
    )
    r = client.completions.create(**kw)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    for c in r.choices:
        lp = c.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs)
        assert all(v <= 0 for v in lp.token_logprobs)
        assert all(len(t) <= 2 for t in lp.top_logprobs)
    assert [c.text for c in client.completions.create(**kw).choices] == [c.text for c in r.choices]
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=server[1], prompt="a b", max_tokens=5, temperature=0, stream=True
        )
        if c.choices
    )
    plain = client.completions.create(model=server[1], prompt="a b", max_tokens=5, temperature=0)
    assert streamed == plain.choices[0].text


def test_stop_strings(client, server):
    full = client.completions.create(model=server[1], prompt="a b c", max_tokens=16, temperature=0)
    text = full.choices[0].text
    if len(text) < 3:
        pytest.skip("continuation too short to cut")
    cut = client.completions.create(
        model=server[1], prompt="a b c", max_tokens=16, temperature=0, stop=[text[1:3]]
    )
    assert cut.choices[0].text == text[: text.find(text[1:3])]
    assert cut.choices[0].finish_reason == "stop"


def test_embeddings(client):
    r = client.embeddings.create(model="all-minilm-l6-v2", input=["first text", "second"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 384
    assert r.usage.prompt_tokens > 0


def test_errors_in_openai_shape(client, server):
    base, name = server

    def post(path, **kw):
        r = httpx.post(base + path, timeout=30, **kw)
        return r.status_code, r.json()["error"], r.headers

    chat = "/v1/chat/completions"
    msgs = [{"role": "user", "content": "x"}]
    status, err, _ = post(chat, content=b"{not json")
    assert status == 400 and "not valid JSON" in err["message"]
    status, err, _ = post(chat, content=b"\xff\xfe\x00")
    assert status == 400
    status, err, _ = post(chat, json={"messages": msgs, "temperature": -1})
    assert status == 400 and err["param"] == "temperature"
    status, err, _ = post(chat, json={"messages": msgs, "max_tokens": "ten"})
    assert status == 400 and err["param"] == "max_tokens"
    status, err, _ = post(
        chat, content=b'{"messages": [{"role": "user", "content": "x"}], "top_p": NaN}'
    )
    assert status == 400 and err["param"] == "top_p"
    status, err, _ = post(chat, json={"messages": "hi"})
    assert status == 400 and err["param"] == "messages"
    status, err, _ = post(chat, json={"model": "nope", "messages": msgs})
    assert status == 404 and err["code"] == "model_not_found"
    status, err, _ = post(chat, json={"messages": msgs, "max_tokens": 10**6})
    assert status == 400 and re.search("context length", err["message"])
    status, err, _ = post("/v1/completions", json={"prompt": [10**9], "max_tokens": 2})
    assert status == 400 and err["param"] == "prompt"
    status, err, _ = post(chat, json={"messages": msgs, "stop": ["x"] * 1000})
    assert status == 400 and err["param"] == "stop"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=msgs)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=name, messages=msgs, temperature=5)
    assert httpx.get(base + "/health").status_code == 200  # still serving


def _metric(base, name):
    text = httpx.get(base + "/metrics").text
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1))


def test_a_client_leaving_mid_stream_frees_its_blocks(server):
    base, name = server
    body = {
        "model": name,
        "messages": [{"role": "user", "content": "Once upon a time"}],
        "max_tokens": 40,
        "stream": True,
    }
    cancelled_before = _finished(base, "cancelled")
    seen_end = False
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as r:
        for i, line in enumerate(r.iter_lines()):
            seen_end |= '"finish_reason": "' in line
            if i >= 2:
                break  # leave after a few chunks
    deadline = time.time() + 20
    while time.time() < deadline:
        if (
            _metric(base, "pyengine_kv_blocks_used") == 0
            and _metric(base, "pyengine_running_sequences") == 0
        ):
            break
        time.sleep(0.1)
    assert _metric(base, "pyengine_kv_blocks_used") == 0
    if not seen_end:  # unless this tiny model finished all 40 tokens before we left
        deadline = time.time() + 20
        while _finished(base, "cancelled") == cancelled_before and time.time() < deadline:
            time.sleep(0.1)
        finished_all = _finished(base, "length") + _finished(base, "stop")
        assert _finished(base, "cancelled") > cancelled_before or finished_all > 0


def _finished(base, reason):
    text = httpx.get(base + "/metrics").text
    m = re.search(
        rf'^pyengine_finished_sequences_total{{reason="{reason}"}} ([0-9.e+]+)$', text, re.M
    )
    return float(m.group(1)) if m else 0.0


def test_many_concurrent_clients_all_answered(server):
    import concurrent.futures as cf

    base, name = server

    def one(i):
        r = httpx.post(
            base + "/v1/completions",
            timeout=120,
            json={"model": name, "prompt": "a b " * (1 + i % 5), "max_tokens": 6},
        )
        return r.status_code

    with cf.ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(one, range(48)))
    assert codes == [200] * 48
    text = httpx.get(base + "/metrics").text
    for metric in (
        "pyengine_time_to_first_token_seconds_bucket",
        "pyengine_inter_token_latency_seconds_bucket",
        "pyengine_queue_length",
    ):
        assert metric in text
