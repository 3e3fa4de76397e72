"""CPU feature detection and the choice of ISA level."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyengine
from pyengine import _C

AVX2 = {"sse2": True, "avx": True, "avx2": True, "fma": True, "f16c": True}
AVX512 = {**AVX2, "avx512f": True, "avx512bw": True, "avx512vl": True, "avx512dq": True}
AMX = {**AVX512, "avx512_bf16": True, "amx_tile": True, "amx_bf16": True}


def test_cpu_info_reports_what_pyengine_uses():
    info = pyengine.cpu_info()
    assert isinstance(info["brand"], str) and info["brand"]
    for flag in (
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512dq",
        "avx512_vnni",
        "avx512_bf16",
        "avx_vnni",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ):
        assert isinstance(info["features"][flag], bool), flag
    assert info["isa_level"] in info["supported_isa_levels"]
    assert info["supported_isa_levels"][0] == "generic"
    assert info["num_threads"] >= 1 and info["available_cpus"] >= 1
    assert set(info["cache_bytes"]) == {"l1d", "l2", "l3"}


def test_default_level_is_the_best_supported():
    if "PYENGINE_ISA" in os.environ:
        pytest.skip("PYENGINE_ISA is set")
    assert pyengine.cpu_info()["isa_level"] == _C.supported_isa_levels()[-1]


@pytest.mark.parametrize(
    ("features", "want"),
    [
        ({"sse2": True}, "generic"),
        (AVX2, "avx2"),
        (AVX512, "avx512"),
        ({**AVX2, "f16c": False}, "generic"),
        ({**AVX512, "avx512dq": False}, "avx2"),
        (AMX, "amx" if _C.built_with_amx else "avx512"),
        ({**AMX, "amx_bf16": False}, "avx512"),
        ({**AMX, "avx512_bf16": False}, "avx512"),
    ],
)
def test_best_level_for_a_cpu(features, want):
    assert _C.choose_isa_level(features) == want


def test_forcing_a_level_the_cpu_lacks_is_an_error():
    with pytest.raises(RuntimeError, match="'avx512' was requested but this CPU/OS lacks: avx512f"):
        _C.choose_isa_level(AVX2, "avx512")
    with pytest.raises(RuntimeError, match="lacks: avx2, fma, f16c"):
        _C.choose_isa_level({"sse2": True}, "avx2")
    with pytest.raises(ValueError, match="unknown ISA level 'sse9'"):
        _C.choose_isa_level(AVX512, "sse9")
    with pytest.raises(
        RuntimeError, match="'amx' was requested but this CPU/OS lacks: .*avx512_bf16"
    ):
        _C.choose_isa_level(AVX512, "amx")
    if not _C.built_with_amx:
        with pytest.raises(RuntimeError, match="lacks: amx kernels \\(left out of this build\\)"):
            _C.choose_isa_level(AMX, "amx")
    assert _C.choose_isa_level(AVX512, "generic") == "generic"


def _import_with(isa: str) -> subprocess.CompletedProcess:
    """A fresh interpreter importing the pyengine under test with PYENGINE_ISA set. It runs in
    the package's parent folder so `python -c` finds the same pyengine as this process."""
    code = "import pyengine; print(pyengine.cpu_info()['isa_level'])"
    env = {**os.environ, "PYENGINE_ISA": isa}
    cwd = Path(pyengine.__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.parametrize("level", _C.supported_isa_levels())
def test_environment_variable_forces_the_level(level):
    proc = _import_with(level)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == level


def test_bad_environment_variable_fails_the_import():
    proc = _import_with("avx9")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "unknown ISA level 'avx9'" in proc.stderr
