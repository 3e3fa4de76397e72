"""The benchmark runner's logic (not its speed): a quick run on tiny models, the JSON it
writes, one row per weight dtype against one peer measurement, the rooflines, compare mode,
missing peers, bad arguments."""

from __future__ import annotations

import functools
import json

import pytest

import pyengine
from pyengine.bench import decoder_suite, encoder_suite
from pyengine.bench import peers as peers_module
from pyengine.bench.machine import MachineLimits
from pyengine.bench.results import Result
from pyengine.bench.runner import main

BF16 = " [bf16 weights]"

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
    _check_one_row_per_dtype(report["results"])
    if plot is not None:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_one_row_per_dtype(results):
    """Encoder and decoder rows: a float32 row with the plain label and a bf16 row with the
    suffix, whose peers are the float32 row's samples. The kernels suite has its own bf16 cases
    (compute-bound only), with a roof of their own where AMX runs them."""
    kernels_bf16 = [r for r in results if r["suite"] == "kernels" and BF16 in r["workload"]]
    assert kernels_bf16 and all(r["unit"] == "GFLOP/s" for r in kernels_bf16)
    tiles = pyengine.cpu_info()["isa_level"] == "amx"
    assert all((r["limit_kind"] == "AMX bf16 peak") == tiles for r in kernels_bf16)
    for suite in ("encoder", "decoder"):
        rows = {(r["workload"], r["threads"]): r for r in results if r["suite"] == suite}
        plain = [key for key in rows if BF16 not in key[0]]
        assert plain and len(rows) == 2 * len(plain)
        for label, threads in plain:
            fp32, bf16 = rows[label, threads], rows[label + BF16, threads]
            assert fp32["samples"].keys() == bf16["samples"].keys() and "torch" in fp32["samples"]
            for peer in fp32["samples"].keys() - {"pyengine"}:
                assert bf16["samples"][peer] == fp32["samples"][peer]
            assert any("bf16 weights vs peers in float32" in n for n in bf16["notes"])
            assert not any("vs peers" in n for n in fp32["notes"])
    decode = [r for r in results if r["suite"] == "decoder" and "decode" in r["workload"]]
    limit = {BF16 in r["workload"]: r["limit"] for r in decode}
    assert limit[True] > 1.5 * limit[False]  # half the matrix bytes per token


def test_peers_are_measured_once_for_every_dtype(tiny_bert_folder):
    fp32 = pyengine.load(tiny_bert_folder)
    results = encoder_suite.run(
        tiny_bert_folder, [1], models={"float32": fp32}, peers=("torch",), quick=True, repeat=2
    )
    assert [r.workload for r in results[:2]] == [
        "bert throughput 8x32",
        "bert throughput 8x32" + BF16,
    ]
    for r32, r16 in zip(results[::2], results[1::2]):
        assert r16.samples["torch"] is r32.samples["torch"]
    with pytest.raises(ValueError, match="models\\['bfloat16'\\] holds float32 weights"):
        encoder_suite.run(tiny_bert_folder, [1], dtypes=["bfloat16"], models={"bfloat16": fp32})


def test_bandwidth_roofline_counts_streamed_matrix_bytes():
    """Matrices (layers and an untied LM head) at the dtype's width, norms in float32, the
    embedding table not at all: counted from the tensors themselves."""
    cfg, tensors = decoder_suite.random_llama(64, 96, 2, 4, 2, vocab=100)
    matrices = sum(t.size for n, t in tensors.items() if t.ndim == 2 and "embed" not in n)
    norms = sum(t.size for t in tensors.values() if t.ndim == 1)
    assert decoder_suite.weight_bytes_per_token(cfg) == 4 * matrices + 4 * norms
    assert decoder_suite.weight_bytes_per_token(cfg, "bfloat16") == 2 * matrices + 4 * norms


def test_random_llama_decode_runs_per_dtype(monkeypatch):
    tiny = functools.partial(decoder_suite.random_llama, 64, 96, 2, 4, 2, vocab=100)
    monkeypatch.setattr(decoder_suite, "random_llama", tiny)
    limits = {1: MachineLimits(1, 100.0, 10.0)}
    results = decoder_suite.run_random_llama([1], limits, new=2)
    assert [r.workload for r in results] == [
        "random Llama-1.1B decode 2 tokens",
        "random Llama-1.1B decode 2 tokens" + BF16,
    ]
    cfg = tiny()[0]
    for r, dtype, short in zip(results, ("float32", "bfloat16"), ("fp32", "bf16")):
        streamed = decoder_suite.weight_bytes_per_token(cfg, dtype)
        assert r.limit == pytest.approx(10e9 / streamed)
        assert r.notes == [f"{streamed / 1e9:.2f} GB of {short} weights streamed per token"]


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
        (["--dtypes", "float32,float16"], "unknown dtype(s) ['float16']"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
