"""pyengine.ops.kv_cache_write: an exact copy into [batch, n_kv_heads, max_ctx, head_dim], and
nothing else touched; bad arguments raise errors naming them."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CANARY, assert_canary_intact, guarded, with_canary

from pyengine.ops import kv_cache_write


@pytest.mark.parametrize("head_dim", [1, 3, 17, 64])
@pytest.mark.parametrize(("q_len", "start_pos"), [(1, 0), (1, 37), (7, 30), (300, 5)])
def test_writes_exactly_the_new_positions(threads, head_dim, q_len, start_pos):
    rng = np.random.default_rng(head_dim * 1000 + q_len)
    batch, n_kv, max_ctx = 2, 3, start_pos + q_len + 4
    k = rng.standard_normal((batch, q_len, n_kv, head_dim), dtype=np.float32)
    v = rng.standard_normal((batch, q_len, n_kv, head_dim), dtype=np.float32)
    shape = (batch, n_kv, max_ctx, head_dim)
    k_cache, k_backing = with_canary(shape)
    v_cache, v_backing = with_canary(shape)
    kv_cache_write(k, v, k_cache, v_cache, start_pos)
    written = slice(start_pos, start_pos + q_len)
    np.testing.assert_array_equal(k_cache[:, :, written], k.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(v_cache[:, :, written], v.transpose(0, 2, 1, 3))
    for cache, backing in ((k_cache, k_backing), (v_cache, v_backing)):
        assert_canary_intact(backing, cache.size)
        assert (cache[:, :, :start_pos] == CANARY).all()
        assert (cache[:, :, start_pos + q_len :] == CANARY).all()


def test_fills_to_the_last_position_of_guarded_caches(threads):
    rng = np.random.default_rng(1)
    k = guarded(rng.standard_normal((2, 5, 2, 17), dtype=np.float32))
    v = guarded(rng.standard_normal((2, 5, 2, 17), dtype=np.float32))
    k_cache = guarded(np.zeros((2, 2, 9, 17), np.float32))
    v_cache = guarded(np.zeros((2, 2, 9, 17), np.float32))
    kv_cache_write(k, v, k_cache, v_cache, 4)
    np.testing.assert_array_equal(k_cache[:, :, 4:], k.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(v_cache[:, :, 4:], v.transpose(0, 2, 1, 3))
    assert (k_cache[:, :, :4] == 0).all() and (v_cache[:, :, :4] == 0).all()


def test_errors():
    k = np.zeros((2, 3, 4, 8), np.float32)
    cache = np.zeros((2, 4, 16, 8), np.float32)

    def call(k=k, v=k, k_cache=cache, v_cache=None, start_pos=0):
        v_cache = np.zeros_like(k_cache) if v_cache is None else v_cache
        kv_cache_write(k, v, k_cache, v_cache, start_pos)

    readonly = cache.copy()
    readonly.flags.writeable = False
    cases = [
        (dict(k=k.astype(np.float16)), TypeError, "k must have dtype float32, got float16"),
        (dict(v_cache=[0.0]), TypeError, "v_cache must be a numpy.ndarray"),
        (dict(k_cache=cache[0]), ValueError, r"k_cache must be 4-D, got shape \(4, 16, 8\)"),
        (dict(v=k.transpose(0, 2, 1, 3)), ValueError, "v must be C-contiguous"),
        (dict(k_cache=readonly), ValueError, "k_cache must be writeable"),
        (dict(v_cache=np.zeros((2, 4, 15, 8), np.float32)), ValueError, "v_cache must have shape"),
        (dict(k=k[:1]), ValueError, r"k must have shape \(batch, q_len, n_kv_heads, head_dim\)"),
        (dict(k=k[:, :, :3].copy()), ValueError, r"= \(2, q_len, 4, 8\) to match k_cache"),
        (dict(k=k[..., :4].copy()), ValueError, r"k must have shape"),
        (dict(v=k[:, :2].copy()), ValueError, r"v must have shape \(2, 3, 4, 8\), got"),
        (dict(start_pos=14), ValueError, r"context overflow: start_pos \+ q_len = 14 \+ 3"),
        (dict(start_pos=-1), ValueError, "start_pos must be >= 0"),
        (dict(v_cache=cache), ValueError, "k_cache must not share memory with v_cache"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            call(**kwargs)
    with pytest.raises(ValueError, match="must not share memory with k"):
        flat = np.zeros(cache.size + k.size, np.float32)
        in_cache = flat[: k.size].reshape(k.shape)
        call(k=in_cache, k_cache=flat[: cache.size].reshape(cache.shape))
