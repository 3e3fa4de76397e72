"""The serve suite's logic (not its speed): a quick run against pyengine's server of a tiny
model started as a subprocess, the rows it reports, and its place in the runner."""

from __future__ import annotations

import pytest

from pyengine.bench import peers as peers_module
from pyengine.bench import serve_suite
from pyengine.bench.results import Result
from pyengine.bench.runner import main

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

METRICS = {
    "generated": "tok/s",
    "TTFT p50": "ms",
    "TTFT p99": "ms",
    "inter-token p50": "ms",
    "inter-token p99": "ms",
}


def test_quick_serve_run_on_a_tiny_model(tiny_llama_folder):
    progress = []
    results = serve_suite.run(
        str(tiny_llama_folder),
        [1],
        dtypes=["float32"],
        quick=True,
        clients=(1, 2),
        max_tokens=4,
        # the tiny model's context is 64 tokens; words its tokenizer was trained on
        prompt=lambda i: "Once upon a time there was a small model." + " a b c" * i,
        progress=progress.append,
    )
    name = tiny_llama_folder.name
    streams = {1: "1 stream", 2: "2 streams"}
    expected = [(f"{name} {streams[n]} x4 {m}", u) for n in (1, 2) for m, u in METRICS.items()]
    assert [(r.workload, r.unit) for r in results] == expected
    assert any("2 stream(s)" in p for p in progress)
    for r in results:
        d = r.as_dict()
        assert d["suite"] == "serve" and d["threads"] == 1
        assert set(d["samples"]) == {"pyengine"}  # no peer: the tiny model is not a GGUF
        assert d["figures"]["pyengine"] > 0
        assert Result.from_dict(d).figure("pyengine") == pytest.approx(d["figures"]["pyengine"])
        assert not any("failed" in n for n in r.notes), r.notes
    two = {r.workload.split(" x4 ")[1]: r for r in results if " 2 streams " in r.workload}
    assert len(two["TTFT p50"].samples["pyengine"]) == 2  # one per client
    assert any(
        n.startswith("tok/s over the 1-stream tok/s: pyengine ") for n in two["generated"].notes
    )


def test_failed_streams_are_counted_and_named():
    ok = serve_suite.Stream(0.0, [0.1, 0.2, 0.4], tokens=3)
    bad = serve_suite.Stream(0.0, error="HTTP 503: busy")
    load = serve_suite.Load([ok, bad], wall=1.0)
    assert (load.failed, load.tokens, load.ttfts()) == (1, 3, [0.1])
    assert load.inter_token() == pytest.approx([0.1, 0.2])
    (tput, *_) = serve_suite.rows("m 2 streams x3", 2, 1, "float32", {"pyengine": load}, {})
    assert tput.figure("pyengine") == pytest.approx(3.0)
    assert "pyengine: 1 of 2 requests failed (first: HTTP 503: busy)" in tput.notes


def test_serve_suite_is_wired_into_the_runner(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(serve_suite, "run", lambda *a, **k: calls.append((a, k)) or [])
    monkeypatch.setattr(peers_module, "peer_installed", lambda name: False)
    argv = ["--quick", "--suite", "serve", "--threads", "1", "--dtypes", "bfloat16"]
    assert main(argv) == 0
    ((source, threads), kwargs) = calls[0]
    assert (source, threads) == ("smollm2-135m-instruct", [1])
    assert kwargs["quick"] and kwargs["dtypes"] == ["bfloat16"] and kwargs["peers"] == []
    out = capsys.readouterr().out
    assert "peer llama.cpp-server: not installed (pip install 'llama-cpp-python[server]')" in out
