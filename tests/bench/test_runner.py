"""The benchmark runner's logic (not its speed): a quick run on tiny models, the JSON it
writes, one row per weight dtype against one peer measurement (torch in fp32 and in bf16), the
labels of every dtype, the rooflines (bytes the model reads, cache-resident rows), the
agreement budgets, compare mode, missing and default peers, bad arguments."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

import pyengine
from pyengine.bench import decoder_suite, encoder_suite, machine
from pyengine.bench import dtypes as dtypes_module
from pyengine.bench import peers as peers_module
from pyengine.bench.machine import MachineLimits
from pyengine.bench.results import Result
from pyengine.bench.runner import main
from pyengine.formats import DTYPE_FORMATS, FORMATS
from pyengine.models.decoder import DecoderModel

BF16, INT8, Q4 = " [bf16 weights]", " [int8 weights]", " [q4 weights]"

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
        "numpy,torch,torch-bf16",
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
    assert "| vs best |" in text.out  # torch and torch-bf16 on the same rows
    # each suite's default dtypes; auto on a float32 checkpoint stands for float32
    assert "encoder float32, bfloat16, int8; decoder auto, bfloat16, float32" in text.out
    assert "auto runs every weight as float32" in text.err
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
        assert r["best_peer"] == result.best_peer()
    for suite in ("encoder", "decoder"):
        rows = [r for r in report["results"] if r["suite"] == suite]
        assert all({"torch", "torch-bf16"} <= set(r["samples"]) for r in rows)
    _check_one_row_per_dtype(report["results"])
    if plot is not None:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_one_row_per_dtype(results):
    """Encoder rows: float32 (plain label), bf16 and int8; decoder rows: float32 (standing for
    auto too: the tiny checkpoint is float32) and bf16; each dtype's peers are the float32
    row's samples. The kernels suite has its own bf16 cases (compute-bound only), with a roof
    of their own where AMX runs them."""
    kernels_bf16 = [r for r in results if r["suite"] == "kernels" and BF16 in r["workload"]]
    assert kernels_bf16 and all(r["unit"] == "GFLOP/s" for r in kernels_bf16)
    tiles = pyengine.cpu_info()["isa_level"] == "amx"
    assert all((r["limit_kind"] == "AMX bf16 peak") == tiles for r in kernels_bf16)
    for suite, suffixes in (("encoder", (BF16, INT8)), ("decoder", (BF16,))):
        rows = {(r["workload"], r["threads"]): r for r in results if r["suite"] == suite}
        plain = [key for key in rows if "weights]" not in key[0]]
        assert plain and len(rows) == (1 + len(suffixes)) * len(plain)
        for label, threads in plain:
            fp32 = rows[label, threads]
            assert not any("vs peers" in n for n in fp32["notes"])
            for suffix in suffixes:
                other = rows[label + suffix, threads]
                assert other["samples"].keys() == fp32["samples"].keys()
                for peer in fp32["samples"].keys() - {"pyengine"}:
                    assert other["samples"][peer] == fp32["samples"][peer]
                short = dtypes_module.SHORT[{BF16: "bfloat16", INT8: "int8"}[suffix]]
                assert any(
                    f"{short} weights vs peers at their own precision (torch fp32, torch-bf16)" in n
                    for n in other["notes"]
                )
    decode = [r for r in results if r["suite"] == "decoder" and "decode" in r["workload"]]
    limit = {BF16 in r["workload"]: r["limit"] for r in decode}
    assert limit[True] > 1.5 * limit[False]  # about half the matrix bytes per token
    resident = machine.last_level_cache_bytes() is not None  # the tiny model fits in any L3
    assert all((r["limit_kind"] == decoder_suite.CACHE_RESIDENT) == resident for r in decode)


def test_peers_are_measured_once_for_every_dtype(tiny_bert_folder):
    fp32 = pyengine.load(tiny_bert_folder, dtype="float32")
    results = encoder_suite.run(
        tiny_bert_folder, [1], models={"float32": fp32}, peers=("torch",), quick=True, repeat=2
    )
    label = "bert throughput 8x32"
    assert [r.workload for r in results[:3]] == [label, label + BF16, label + INT8]
    for r32, r16, r8 in zip(results[::3], results[1::3], results[2::3]):
        assert r16.samples["torch"] is r32.samples["torch"] is r8.samples["torch"]
    with pytest.raises(ValueError, match="models\\['bfloat16'\\] holds float32 weights"):
        encoder_suite.run(tiny_bert_folder, [1], dtypes=["bfloat16"], models={"bfloat16": fp32})


def test_auto_on_a_float32_checkpoint_is_the_float32_row(tiny_bert_folder, monkeypatch):
    """auto keeps a float32 checkpoint in float32: one load, one row, the plain label."""
    loads, messages = [], []
    real_load = pyengine.load

    def load(source, dtype):
        loads.append(dtype)
        return real_load(source, dtype=dtype)

    monkeypatch.setattr(pyengine, "load", load)
    models = dtypes_module.load_models(
        tiny_bert_folder, ["auto", "float32", "q4"], progress=messages.append
    )
    assert loads == ["auto", "q4"] and list(models) == ["float32", "q4"]
    assert models["float32"].dtype == "auto"
    assert any("auto runs every weight as float32" in m for m in messages)
    alone = dtypes_module.load_models(tiny_bert_folder, ["auto"])
    assert dtypes_module.workload_label("w", "auto", alone["auto"]) == "w"


class _Formats:
    def __init__(self, formats):
        self.weight_formats = formats


@pytest.mark.parametrize(
    ("dtype", "formats", "label", "short"),
    [
        ("float32", {"float32": 3}, "w", "fp32"),
        ("bfloat16", {"bfloat16": 3}, "w [bf16 weights]", "bf16"),
        ("int8", {"Q8_0": 3}, "w [int8 weights]", "int8"),
        ("q4", {"Q4_0": 3}, "w [q4 weights]", "q4"),
        # SmolLM2's GGUF: Q4_1 layers, a Q8_0 embedding tied to the LM head
        ("auto", {"Q8_0": 1, "Q4_1": 180}, "w [Q4_1/Q8_0 weights]", "Q4_1/Q8_0"),
        ("auto", {"Q4_0": 3}, "w [q4 weights]", "q4"),
        ("auto", None, "w [auto weights]", "auto"),  # no model at hand (the serve suite)
    ],
)
def test_every_dtype_has_a_label(dtype, formats, label, short):
    model = None if formats is None else _Formats(formats)
    assert dtypes_module.workload_label("w", dtype, model) == label
    assert dtypes_module.short_name(dtype, model) == short
    notes = dtypes_module.dtype_notes(dtype, {"torch": [], "llama.cpp": []}, model)
    assert notes == [
        f"pyengine with {short} weights vs peers at their own precision (torch fp32, llama.cpp "
        "on the GGUF's blocks), the same peer samples in every dtype's row"
    ] or (short == "fp32" and notes == [])


def test_parse_dtypes_takes_every_dtype():
    assert dtypes_module.parse_dtypes("auto, float32,bfloat16,int8,q4,int8") == list(
        pyengine.api.DTYPES
    )


def test_agreement_budget_follows_both_engines_formats():
    """1 - cosine within each format's budget (bits per weight), the two engines' angles
    added; float32 on both sides compares entries."""
    rng = np.random.default_rng(0)
    theirs = rng.standard_normal((4, 64))
    noise = rng.standard_normal((4, 64))
    noise -= (noise * theirs).sum(-1, keepdims=True) / (theirs * theirs).sum(-1)[:, None] * theirs

    def off_by(one_minus_cos):  # theirs turned by an angle of that 1 - cosine
        angle = np.arccos(1 - one_minus_cos)
        unit = noise / np.linalg.norm(noise, axis=-1, keepdims=True)
        scale = np.linalg.norm(theirs, axis=-1, keepdims=True)
        return np.cos(angle) * theirs + np.sin(angle) * scale * unit

    f32, bf16, q8, q4 = (FORMATS[f] for f in ("float32", "bfloat16", "Q8_0", "Q4_0"))
    check = encoder_suite.check_agreement
    check("torch", theirs, theirs + 5e-5, f32)
    with pytest.raises(AssertionError, match="pyengine \\(float32 weights\\) by"):
        check("torch", theirs, theirs + 2e-4, f32)
    check("torch", theirs, off_by(5e-4), bf16)
    with pytest.raises(AssertionError, match="cosine similarity"):
        check("torch", theirs, off_by(5e-3), bf16)
    check("torch", theirs, off_by(5e-3), q8)
    check("torch-bf16", theirs, off_by(1.5e-2), q8, bf16)  # (sqrt(1e-2) + sqrt(1e-3))^2
    with pytest.raises(AssertionError, match="torch \\(float32 weights\\) disagrees"):
        check("torch", theirs, off_by(1.5e-2), q8)
    check("torch", theirs, off_by(0.1), q4)
    with pytest.raises(AssertionError):
        check("torch", theirs, np.full_like(theirs, np.nan), q4)


def test_bandwidth_roofline_counts_the_bytes_the_model_reads():
    """The packed linear weights as the model holds them (blocks, padding, an untied LM head),
    norms in float32, the embedding table not at all."""
    cfg, tensors = decoder_suite.random_llama(64, 96, 2, 4, 2, vocab=100)
    matrices = sum(t.size for n, t in tensors.items() if t.ndim == 2 and "embed" not in n)
    norms = sum(t.size for t in tensors.values() if t.ndim == 1)
    assert decoder_suite.decode_weight_counts(cfg) == (matrices, norms)
    streamed = {}
    for dtype in ("float32", "bfloat16", "int8", "q4"):
        model = DecoderModel(
            cfg, decoder_suite.random_llama(64, 96, 2, 4, 2, vocab=100)[1], dtype=dtype
        )
        streamed[dtype] = decoder_suite.weight_bytes_per_token(model)
        assert streamed[dtype] == model.matrix_weight_bytes + 4 * norms
    # the format's bytes per weight (Q8_0 8.5 bits, Q4_0 4.5 bits), plus the padding of packed
    # rows and panels
    for dtype, nbytes in streamed.items():
        exact = FORMATS[DTYPE_FORMATS[dtype]].bits_per_weight / 8 * matrices
        assert exact <= nbytes - 4 * norms <= 1.1 * exact


def test_decode_roofline_names_cache_resident_weights(monkeypatch):
    monkeypatch.setattr(decoder_suite, "last_level_cache_bytes", lambda: 32 << 20)
    roof, kind, notes = decoder_suite.decode_roofline(10_000_000, 20.0, "q4")
    assert roof == pytest.approx(2000.0) and kind == decoder_suite.CACHE_RESIDENT
    assert notes[0] == "10.0 MB of q4 weights read per token"
    assert "fit in the 32 MiB L3" in notes[1]
    roof, kind, notes = decoder_suite.decode_roofline(2_500_000_000, 20.0, "bf16")
    assert (roof, kind, notes) == (8.0, "bandwidth", ["2.50 GB of bf16 weights read per token"])
    monkeypatch.setattr(decoder_suite, "last_level_cache_bytes", lambda: None)  # unknown L3
    assert decoder_suite.decode_roofline(10_000_000, 20.0, "q4")[1] == "bandwidth"


@pytest.mark.parametrize(
    ("text", "size"), [("32768K\n", 32 << 20), ("8M", 8 << 20), ("1048576", 1 << 20), ("", None)]
)
def test_last_level_cache_size_from_sysfs(tmp_path, text, size):
    path = tmp_path / "size"
    path.write_text(text)
    assert machine.last_level_cache_bytes(str(path)) == size
    assert machine.last_level_cache_bytes(str(tmp_path / "missing")) is None


def test_random_llama_decode_runs_per_dtype(monkeypatch):
    tiny = functools.partial(decoder_suite.random_llama, 64, 96, 2, 4, 2, vocab=100)
    monkeypatch.setattr(decoder_suite, "random_llama", tiny)
    monkeypatch.setattr(decoder_suite, "last_level_cache_bytes", lambda: None)
    limits = {1: MachineLimits(1, 100.0, 10.0)}
    results = decoder_suite.run_random_llama([1], limits, new=2)
    label = "random Llama-1.1B decode 2 tokens"
    assert [r.workload for r in results] == [label + BF16, label + INT8, label + Q4]
    for r, dtype in zip(results, ("bfloat16", "int8", "q4")):
        streamed = decoder_suite.weight_bytes_per_token(DecoderModel(*tiny(), dtype=dtype))
        assert r.limit == pytest.approx(10e9 / streamed) and r.limit_kind == "bandwidth"
        short = dtypes_module.SHORT[dtype]
        assert r.notes == [f"{streamed / 1e6:.1f} MB of {short} weights read per token"]


def test_vs_best_is_the_fastest_peer_of_the_row():
    r = Result("decoder", "w", 1, "tok/s", 1.0, {"pyengine": [1.0], "torch": [2.0], "x": [0.5]})
    assert r.best_peer() == "x" and r.as_dict()["best_peer"] == "x"
    from pyengine.bench import report

    text = report.table([r, _result([1.0])])
    assert "vs best" in text and "2.00x x" not in text and "0.50x x" in text
    assert "vs best" not in report.table([_result([1.0])])


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


def test_torch_bf16_runs_by_default_only_with_bf16_hardware(
    monkeypatch, capsys, tiny_llama_folder, tiny_bert_folder
):
    from pyengine.bench import runner

    chosen = {"encoder": [tiny_bert_folder], "decoder": [tiny_llama_folder]}
    monkeypatch.setattr(runner, "_models_by_suite", lambda models, suites: chosen)
    calls = {}
    for suite in (encoder_suite, decoder_suite):
        monkeypatch.setattr(suite, "run", lambda *a, _s=suite, **k: calls.update({_s: k}) or [])
    monkeypatch.setattr(
        peers_module, "peer_installed", lambda name: name in ("torch", "torch-bf16")
    )
    features = pyengine.cpu_info()["features"]
    native = bool(features.get("avx512_bf16") or features.get("amx_bf16"))
    assert main(["--quick", "--suite", "encoder,decoder", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert ("peer torch-bf16: not run by default: no bf16 hardware" in out) == (not native)
    expected = ["torch", "torch-bf16"] if native else ["torch"]
    assert calls[encoder_suite]["peers"] == calls[decoder_suite]["peers"] == expected
    assert calls[encoder_suite]["dtypes"] == list(encoder_suite.DEFAULT_DTYPES)
    assert calls[decoder_suite]["dtypes"] == list(decoder_suite.DEFAULT_DTYPES)
    assert peers_module.default_peers("decoder") == [
        p for p in ("torch", "torch-bf16") if p in expected
    ]
    # named, it runs on any CPU; --dtypes replaces every suite's defaults
    argv = ["--quick", "--suite", "encoder,decoder", "--threads", "1", "--dtypes", "int8,q4"]
    assert main([*argv, "--peers", "torch-bf16"]) == 0
    assert calls[encoder_suite]["peers"] == calls[decoder_suite]["peers"] == ["torch-bf16"]
    assert calls[encoder_suite]["dtypes"] == calls[decoder_suite]["dtypes"] == ["int8", "q4"]


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


def test_onnxruntime_int8_peer_runs_its_quantized_export(tiny_bert_folder, tmp_path):
    """ONNX Runtime's own int8 (quantize_dynamic) as a peer: an int8 model file of its own,
    timed, and checked against pyengine within its stated budget."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    results = encoder_suite.run(
        tiny_bert_folder,
        [1],
        dtypes=["float32"],
        peers=("onnxruntime", "onnxruntime-int8"),
        quick=True,
        repeat=2,
        workdir=tmp_path,
    )
    assert (tmp_path / "encoder-int8.onnx").exists()
    assert all("onnxruntime-int8" in r.samples and "onnxruntime" in r.samples for r in results)
