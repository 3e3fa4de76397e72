"""The rotary tables grow with the positions run; grown or not, they hold the same values."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import pyengine
from pyengine.models.common import RopeTable

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
import fuzz_seeds  # noqa: E402


def test_growth_gives_the_values_of_a_whole_table():
    inv_freq = 1.0 / 10000.0 ** (np.arange(0, 64, 2) / 64)
    table = RopeTable(inv_freq, max_positions=100_000)
    assert table.cos.shape == (4096, 32)
    cos, sin = table.for_positions(np.array([[5, 9000]]))
    assert cos.shape[0] >= 9001 and sin.shape == cos.shape
    angles = np.outer(np.arange(cos.shape[0], dtype=np.float64), inv_freq)
    np.testing.assert_array_equal(cos, np.cos(angles).astype(np.float32))
    np.testing.assert_array_equal(sin, np.sin(angles).astype(np.float32))


def test_a_model_whose_table_grows_mid_run_gives_the_same_logits(tmp_path, monkeypatch):
    path = fuzz_seeds.write_gguf_seed(tmp_path / "m.gguf", context=512)
    ids = [[(7 * i) % fuzz_seeds.VOCAB for i in range(300)]]
    whole = pyengine.load(path).forward(ids)
    monkeypatch.setattr(RopeTable, "INITIAL_ROWS", 16)
    small = pyengine.load(path)
    assert small._weights["rope"].cos.shape[0] == 16
    np.testing.assert_array_equal(small.forward(ids), whole)
    assert small._weights["rope"].cos.shape[0] >= 300
