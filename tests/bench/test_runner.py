"""The benchmark runner's logic (not its speed): a quick run on tiny models, the JSON it
writes, compare mode, missing peers, bad arguments."""

from __future__ import annotations

import json

import pytest

from pyengine.bench import peers as peers_module
from pyengine.bench.results import Result
from pyengine.bench.runner import main

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_bert_folder(tmp_path_factory, tiny_llama_folder):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=2000,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    folder = tmp_path_factory.mktemp("tiny-bert")
    transformers.BertModel(cfg).eval().save_pretrained(folder)
    return folder


def test_quick_run_writes_every_sample(tmp_path, tiny_llama_folder, tiny_bert_folder, capsys):
    out = tmp_path / "run.json"
    argv = [
        "--quick",
        "--threads",
        "1",
        "--repeat",
        "2",
        "--peers",
        "numpy,torch",
        "--models",
        str(tiny_llama_folder),
        str(tiny_bert_folder),
        "--json",
        str(out),
        "--markdown",
    ]
    plot = None
    if peers_module.installed("matplotlib"):
        plot = tmp_path / "run.png"
        argv += ["--plot", str(plot)]
    assert main(argv) == 0
    text = capsys.readouterr()
    assert "| suite | workload |" in text.out and "measured FMA peak" in text.out
    assert "kernels:" in text.err and "decoder:" in text.err  # progress lines
    report = json.loads(out.read_text())
    assert {"machine", "versions", "limits", "results"} <= set(report)
    suites = {r["suite"] for r in report["results"]}
    assert suites == {"kernels", "encoder", "decoder"}
    for r in report["results"]:
        assert len(r["samples"]["pyengine"]) >= 2
        assert r["figures"]["pyengine"] > 0
        result = Result.from_dict(r)
        assert result.figure("pyengine") == pytest.approx(r["figures"]["pyengine"])
        for peer in result.peers:
            assert r["speedup"][peer] == pytest.approx(result.speedup(peer))
    assert any("torch" in r["samples"] for r in report["results"] if r["suite"] == "decoder")
    if plot is not None:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _result(seconds, workload="w"):
    return Result("kernels", workload, 1, "GFLOP/s", 1.0, {"pyengine": seconds})


def _write(path, results):
    path.write_text(json.dumps({"results": [r.as_dict() for r in results]}))


def test_compare_flags_regressions_beyond_noise(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    _write(old, [_result([1.0, 1.01, 0.99, 1.0]), _result([1.0] * 4, "same")])
    _write(new, [_result([2.0, 2.02, 1.98, 2.0]), _result([1.01] * 4, "same")])
    assert main(["--compare", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "1 regression(s)" in out
    assert main(["--compare", str(new), str(old)]) == 0
    assert "improved" in capsys.readouterr().out


def test_missing_peer_is_listed_with_its_install_command(monkeypatch, capsys):
    monkeypatch.setattr(peers_module, "peer_installed", lambda name: name == "numpy")
    assert main(["--quick", "--suite", "kernels", "--threads", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "peer torch: not installed (pip install" in out
    assert "peer llama.cpp: not installed" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suite", "nope"], "unknown suite"),
        (["--peers", "tensorflow"], "unknown peer"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
