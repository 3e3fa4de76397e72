"""pyengine.ops.embedding: a row gather, compared exactly with numpy's table[ids]."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CANARY, OP_WIDTHS, assert_canary_intact, guarded, with_canary

from pyengine.ops import embedding

ID_SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4)]


def embedding_reference(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The spec: out[..., :] = table[ids[...], :]."""
    return table[ids]


@pytest.mark.parametrize("dim", OP_WIDTHS)
def test_matches_reference(threads, dim):
    rng = np.random.default_rng(dim)
    vocab = 37
    table = rng.standard_normal((vocab, dim), dtype=np.float32)
    for shape in ID_SHAPES:
        for dtype in (np.int32, np.int64):
            ids = rng.integers(0, vocab, shape).astype(dtype)
            got = embedding(table, ids)
            assert got.shape == (*shape, dim)
            np.testing.assert_array_equal(got, embedding_reference(table, ids))


def test_first_and_last_rows_and_empty():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    ids = np.array([3, 0, 3], np.int64)
    np.testing.assert_array_equal(embedding(table, ids), table[ids])
    assert embedding(table, np.zeros((2, 0), np.int32)).shape == (2, 0, 3)
    assert embedding(np.zeros((4, 0), np.float32), ids).shape == (3, 0)


def test_large_gather_is_the_same_at_any_thread_count(threads):
    rng = np.random.default_rng(3)
    table = rng.standard_normal((50_000, 64), dtype=np.float32)
    ids = rng.integers(0, 50_000, (8, 2500)).astype(np.int32)
    out = np.empty((8, 2500, 64), np.float32)
    assert embedding(table, ids, out=out) is out
    np.testing.assert_array_equal(out, table[ids])


def test_no_reads_or_writes_past_buffers(threads):
    rng = np.random.default_rng(2)
    for vocab, dim, n in [(1, 1, 1), (3, 7, 5), (17, 33, 9), (5, 4096, 20), (1000, 65, 3000)]:
        table = guarded(rng.standard_normal((vocab, dim), dtype=np.float32))
        ids = guarded(rng.integers(0, vocab, n).astype(np.int64))
        ids[-1] = vocab - 1  # the table's last row, which ends at the guard page
        out, backing = with_canary((n, dim))
        embedding(table, ids, out=out)
        assert_canary_intact(backing, n * dim)
        np.testing.assert_array_equal(out, table[ids])


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_out_of_range_ids_raise_before_anything_is_written(dtype):
    table = np.ones((10, 4), np.float32)
    out = np.full((2, 2, 4), CANARY, np.float32)
    for bad, where in [(10, r"ids\[1, 0\]"), (-1, r"ids\[1, 0\]")]:
        ids = np.array([[0, 9], [bad, 2]], dtype)
        with pytest.raises(
            ValueError, match=rf"id {bad} at {where} is out of range: vocab size is 10"
        ):
            embedding(table, ids, out=out)
        assert (out == CANARY).all()
    with pytest.raises(ValueError, match=r"id 2147483647 at ids\[\] is out of range"):
        embedding(table, np.array(2**31 - 1, dtype))
    with pytest.raises(ValueError, match="vocab size is 0"):
        embedding(np.ones((0, 4), np.float32), np.zeros(1, dtype))


def test_errors():
    table = np.ones((10, 4), np.float32)
    ids = np.array([1, 2], np.int32)
    with pytest.raises(TypeError, match="ids must have dtype int32 or int64, got float32"):
        embedding(table, ids.astype(np.float32))
    with pytest.raises(TypeError, match="ids must have dtype int32 or int64, got uint32"):
        embedding(table, ids.astype(np.uint32))
    with pytest.raises(TypeError, match="ids must be a numpy.ndarray of int32 or int64, got list"):
        embedding(table, [1, 2])
    with pytest.raises(TypeError, match="table must have dtype float32, got float64"):
        embedding(table.astype(np.float64), ids)
    with pytest.raises(ValueError, match=r"table must be 2-D, got shape \(10,\)"):
        embedding(np.ones(10, np.float32), ids)
    with pytest.raises(ValueError, match="table must be C-contiguous"):
        embedding(np.ones((4, 10), np.float32).T, ids)
    with pytest.raises(ValueError, match="ids must be C-contiguous"):
        embedding(table, np.ones((3, 2), np.int32).T)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4\), got \(2, 5\)"):
        embedding(table, ids, out=np.empty((2, 5), np.float32))
    with pytest.raises(ValueError, match="out must not share memory with table"):
        embedding(table, ids, out=table[:2])
    readonly = np.empty((2, 4), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        embedding(table, ids, out=readonly)


def test_big_endian_ids_are_refused_not_misread():
    import pyengine.ops as ops

    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    with pytest.raises(TypeError, match="ids must be in native .*byte order"):
        ops.embedding(table, np.array([1, 2], dtype=">i8"))
