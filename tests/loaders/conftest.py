"""Fixtures shared by the loader tests: the real models shipped as pip packages."""

from __future__ import annotations

import pytest

from pyengine.loaders import load_weights


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    return load_weights(smollm2_path)


@pytest.fixture(scope="session")
def minilm(minilm_path):
    return load_weights(minilm_path)
