"""The paged cache's bookkeeping: allocation, refcounts, the prefix cache and its eviction."""

from __future__ import annotations

import pytest

from pyengine.serve.block_manager import BlockManager, CacheFullError, block_hashes


def test_hashes_cover_the_whole_prefix():
    a = block_hashes([1, 2, 3, 4, 5, 6, 7], 2)
    b = block_hashes([9, 2, 3, 4], 2)
    assert len(a) == 3 and len(b) == 2
    assert a[1] != b[1]  # same block tokens [3, 4], different prefix
    assert block_hashes([1, 2, 3, 4], 2) == a[:2]


def test_allocate_free_and_full():
    m = BlockManager(4, 16, prefix_caching=False)
    first = m.allocate(3)
    assert m.used == 3 and m.available == 1 and len(set(first)) == 3
    with pytest.raises(CacheFullError):
        m.allocate(2)
    assert m.used == 3  # a failed allocation takes nothing
    m.free(first)
    assert m.used == 0 and m.available == 4
    assert m.lookup([123]) == []  # prefix caching off


def test_shared_prefix_blocks_are_refcounted():
    m = BlockManager(6, 2)
    hashes = block_hashes([1, 2, 3, 4, 5], 2)
    a = m.allocate(3)
    for block, h in zip(a, hashes):
        m.register(block, h)
    found = m.lookup(hashes)
    assert found == a[:2]
    b = m.allocate(1, found)
    assert b[:2] == a[:2] and m.used == 4
    m.free(a)
    assert m.used == 3  # the shared blocks are still held by b
    m.free(b)
    assert m.used == 0 and m.lookup(hashes) == a[:2]  # cached, not lost


def test_eviction_takes_free_blocks_first_then_least_recent_later_blocks_first():
    m = BlockManager(4, 1)
    old = m.allocate(2)
    for block, h in zip(old, block_hashes([1, 2], 1)):
        m.register(block, h)
    m.free(old)  # both cached
    fresh = m.allocate(2)  # the two free blocks go first
    assert set(fresh).isdisjoint(old) and m.lookup(block_hashes([1, 2], 1)) == old
    (evicted,) = m.allocate(1)  # now a cached one: the prefix's later block
    assert evicted == old[1]
    assert m.lookup(block_hashes([1, 2], 1)) == old[:1]


def test_reusing_a_cached_block_takes_it_out_of_the_evictable_set():
    m = BlockManager(2, 1)
    (a,) = m.allocate(1)
    m.register(a, 7)
    m.free([a])
    assert m.available == 2
    got = m.allocate(1, [a])
    assert got[0] == a and m.available == 0
    with pytest.raises(CacheFullError):
        m.allocate(1)
