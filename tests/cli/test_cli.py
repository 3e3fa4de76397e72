"""The `pyengine` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pyengine
from pyengine.cli import main


def test_generate_streams_text_and_reports_speed(tiny_llama_folder, capsys):
    assert (
        main(
            [
                "generate",
                "Once upon",
                "--model",
                str(tiny_llama_folder),
                "--max-new-tokens",
                "6",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    model = pyengine.load(tiny_llama_folder)
    assert out == model.generate("Once upon", max_new_tokens=6) + "\n"
    assert "prefill:" in err and "decode:" in err and "tokens/s" in err


def test_bad_model_is_a_clean_error(tmp_path, capsys):
    assert main(["generate", "hi", "--model", str(tmp_path / "nope")]) == 2
    assert "pyengine: error:" in capsys.readouterr().err


def test_console_script_entry_point_runs(tiny_llama_folder):
    """`python -m pyengine.cli` (what the console script calls) works in a fresh process."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyengine.cli",
            "generate",
            "a b",
            "--model",
            str(tiny_llama_folder),
            "--max-new-tokens",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=Path(pyengine.__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert "decode:" in proc.stderr


@pytest.mark.parametrize("argv", [["generate"], ["nope"]])
def test_usage_errors(argv):
    with pytest.raises(SystemExit):
        main(argv)


def test_encode_json_lines_and_npy(tmp_path, capsys):
    try:
        from pyengine.loaders import resolve

        resolve("all-minilm-l6-v2")
    except Exception as e:  # the model package is not installed
        pytest.skip(str(e))
    import json

    import numpy as np

    assert main(["encode", "--model", "all-minilm-l6-v2", "first text", "second text"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["text"] for r in rows] == ["first text", "second text"]
    assert len(rows[0]["embedding"]) == 384
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"line {i}" for i in range(40)) + "\n")
    out = tmp_path / "out.npy"
    assert main(["encode", "--input", str(texts), "--output", str(out), "--progress"]) == 0
    vectors = np.load(out)
    assert vectors.shape == (40, 384)
    assert "40/40" in capsys.readouterr().err
    np.testing.assert_allclose(vectors[0], rows_vec("line 0"), atol=1e-6)
    assert main(["encode"]) == 2


def rows_vec(text):
    return pyengine.load("all-minilm-l6-v2").encode(text)


def test_generate_with_bfloat16_weights(tiny_llama_folder, capsys):
    argv = ["generate", "Once upon", "--model", str(tiny_llama_folder), "--max-new-tokens", "6"]
    assert main(argv + ["--dtype", "bfloat16"]) == 0
    out, _ = capsys.readouterr()
    model = pyengine.load(tiny_llama_folder, dtype="bfloat16")
    assert out == model.generate("Once upon", max_new_tokens=6) + "\n"
    with pytest.raises(SystemExit):
        main(argv + ["--dtype", "float16"])
    assert "invalid choice: 'float16'" in capsys.readouterr().err
