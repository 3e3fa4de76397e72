"""Fixtures shared by all tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

from helpers import ISA_LEVELS  # noqa: E402

import pyengine  # noqa: E402


@pytest.fixture(params=ISA_LEVELS)
def isa(request):
    """Every ISA level this machine can run, each tested directly."""
    return request.param


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    previous = pyengine.get_num_threads()
    pyengine.set_num_threads(request.param)
    yield request.param
    pyengine.set_num_threads(previous)
