"""Fixtures shared by the loader tests: the real models shipped as pip packages."""

from __future__ import annotations

import importlib.metadata

import pytest

from pyengine.loaders import REGISTRY, load_weights, resolve


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(REGISTRY[name].package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def require_model(name: str):
    """Path of a registry model, or skip naming the pip command that provides it."""
    if not _installed(name):
        pytest.skip(f"{name} not installed: {REGISTRY[name].pip_command}")
    return resolve(name)


@pytest.fixture(name="require_model", scope="session")
def require_model_fixture():
    return require_model


@pytest.fixture(scope="session")
def smollm2_path():
    return require_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def minilm_path():
    return require_model("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    return load_weights(smollm2_path)


@pytest.fixture(scope="session")
def minilm(minilm_path):
    return load_weights(minilm_path)
