"""pyengine._C.paged_attention and paged_kv_write (the serving engine's ragged step) against
the float64 reference of tests/helpers.py, on every ISA level, at 1 and 2 threads: sequences of
mixed phases (prompt chunks continuing a cache, single decode tokens) whose keys sit in
scattered pool blocks. And the property the engine's deterministic mode rests on: a sequence's
rows are bit-identical alone or in any batch, for any thread count."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_gemm_close, attention_reference

import pyengine
from pyengine import _C


def make_batch(rng, seqs, n_heads, n_kv, head_dim, block_size, spare_blocks=3):
    """seqs: [(first_pos, q_len)]. Returns q [T, H, D], pools, q_start, first_pos, table and
    the dense K/V of each sequence [1, kv, keys, D] (the reference's layout)."""
    need = [-(-(p + n) // block_size) for p, n in seqs]
    n_blocks = sum(need) + spare_blocks
    k_pool = rng.standard_normal((n_blocks, n_kv, block_size, head_dim), dtype=np.float32)
    v_pool = rng.standard_normal((n_blocks, n_kv, block_size, head_dim), dtype=np.float32)
    ids = rng.permutation(n_blocks).astype(np.int32)  # blocks scattered over the pool
    table = np.full((len(seqs), max(need + [1])), -1, np.int32)
    dense, at = [], 0
    for s, (p, n) in enumerate(seqs):
        table[s, : need[s]] = ids[at : at + need[s]]
        at += need[s]
        keys = p + n
        kd = k_pool[table[s, : need[s]]].transpose(1, 0, 2, 3).reshape(n_kv, -1, head_dim)
        vd = v_pool[table[s, : need[s]]].transpose(1, 0, 2, 3).reshape(n_kv, -1, head_dim)
        dense.append((kd[None, :, :keys].copy(), vd[None, :, :keys].copy()))
    q_start = np.zeros(len(seqs) + 1, np.int32)
    q_start[1:] = np.cumsum([n for _, n in seqs])
    first_pos = np.array([p for p, _ in seqs], np.int32)
    q = rng.standard_normal((int(q_start[-1]), n_heads, head_dim), dtype=np.float32)
    return q, k_pool, v_pool, q_start, first_pos, table, dense


def run(q, k_pool, v_pool, q_start, first_pos, table, isa=None):
    return _C.paged_attention(
        q, k_pool, v_pool, q_start=q_start, first_pos=first_pos, block_table=table, isa=isa
    )


MIXES = {
    "decode": [(0, 1), (5, 1), (16, 1), (63, 1), (64, 1), (300, 1)],
    "prefill": [(0, 33), (0, 7), (0, 129)],
    "chunks": [(16, 17), (64, 65), (3, 31), (127, 1)],
    "mixed": [(0, 65), (40, 1), (200, 1), (17, 63), (0, 1), (33, 3)],
}


@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("block_size", [1, 16, 64])
def test_against_reference(isa, threads, mix, block_size):
    rng = np.random.default_rng(len(mix) * 100 + block_size)
    seqs = MIXES[mix]
    q, kp, vp, q_start, first_pos, table, dense = make_batch(rng, seqs, 6, 2, 64, block_size)
    got = run(q, kp, vp, q_start, first_pos, table, isa)
    for s, (p, _n) in enumerate(seqs):
        qs = q[q_start[s] : q_start[s + 1]][None]
        ref, bound = attention_reference(qs, *dense[s], start_pos=p)
        assert_gemm_close(got[q_start[s] : q_start[s + 1]], ref[0], bound[0], f"sequence {s}")


@pytest.mark.parametrize("head_dim", [1, 3, 17, 80, 128])
@pytest.mark.parametrize("heads", [(4, 4), (8, 1), (9, 3)])
def test_head_dims_and_groups(isa, head_dim, heads):
    rng = np.random.default_rng(head_dim)
    seqs = [(0, 31), (20, 1), (7, 9)]
    q, kp, vp, q_start, first_pos, table, dense = make_batch(rng, seqs, *heads, head_dim, 16)
    got = run(q, kp, vp, q_start, first_pos, table, isa)
    for s, (p, _) in enumerate(seqs):
        ref, bound = attention_reference(
            q[q_start[s] : q_start[s + 1]][None], *dense[s], start_pos=p
        )
        assert_gemm_close(got[q_start[s] : q_start[s + 1]], ref[0], bound[0], f"sequence {s}")


def test_a_sequence_is_bit_identical_in_any_batch(isa):
    """Alone, or beside other sequences in any order, and at 1 or 2 threads: the same bits."""
    rng = np.random.default_rng(7)
    seqs = MIXES["mixed"]
    q, kp, vp, q_start, first_pos, table, _ = make_batch(rng, seqs, 6, 2, 64, 16)
    previous = pyengine.get_num_threads()
    try:
        whole = {}
        for threads in (1, 2):
            pyengine.set_num_threads(threads)
            whole[threads] = run(q, kp, vp, q_start, first_pos, table, isa)
        np.testing.assert_array_equal(whole[1], whole[2])
        for s in range(len(seqs)):
            rows = slice(q_start[s], q_start[s + 1])
            alone = run(
                q[rows].copy(),
                kp,
                vp,
                np.array([0, q_start[s + 1] - q_start[s]], np.int32),
                first_pos[s : s + 1].copy(),
                table[s : s + 1].copy(),
                isa,
            )
            np.testing.assert_array_equal(alone, whole[1][rows])
        order = rng.permutation(len(seqs))  # the same sequences in another order
        lens = np.diff(q_start)[order]
        q_start2 = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
        q2 = np.concatenate([q[q_start[s] : q_start[s + 1]] for s in order])
        got = run(q2, kp, vp, q_start2, first_pos[order].copy(), table[order].copy(), isa)
        for i, s in enumerate(order):
            np.testing.assert_array_equal(
                got[q_start2[i] : q_start2[i + 1]], whole[1][q_start[s] : q_start[s + 1]]
            )
    finally:
        pyengine.set_num_threads(previous)


def test_kv_write_scatters_tokens_to_their_slots():
    rng = np.random.default_rng(3)
    n_blocks, n_kv, bs, d = 5, 2, 4, 3
    kp = np.zeros((n_blocks, n_kv, bs, d), np.float32)
    vp = np.zeros_like(kp)
    k = rng.standard_normal((6, n_kv, d), dtype=np.float32)
    v = rng.standard_normal((6, n_kv, d), dtype=np.float32)
    slots = np.array([19, 0, 5, 6, 7, 12], np.int32)
    _C.paged_kv_write(k, v, kp, vp, slots)
    for t, slot in enumerate(slots):
        np.testing.assert_array_equal(kp[slot // bs, :, slot % bs], k[t])
        np.testing.assert_array_equal(vp[slot // bs, :, slot % bs], v[t])
    written = np.zeros((n_blocks, bs), bool)
    written.flat[slots] = True
    assert not kp.transpose(0, 2, 1, 3)[~written].any()  # nothing else touched


def test_large_prefill_many_threads_tasks():
    rng = np.random.default_rng(11)
    seqs = [(0, 700), (100, 1), (1000, 1)]
    q, kp, vp, q_start, first_pos, table, dense = make_batch(rng, seqs, 8, 2, 64, 64)
    got = run(q, kp, vp, q_start, first_pos, table)
    for s, (p, _) in enumerate(seqs):
        ref, bound = attention_reference(
            q[q_start[s] : q_start[s + 1]][None], *dense[s], start_pos=p
        )
        assert_gemm_close(got[q_start[s] : q_start[s + 1]], ref[0], bound[0], f"sequence {s}")


def test_errors():
    rng = np.random.default_rng(0)
    q, kp, vp, q_start, first_pos, table, _ = make_batch(rng, [(0, 3), (4, 1)], 4, 2, 8, 4)
    ok = dict(q_start=q_start, first_pos=first_pos, block_table=table)
    _C.paged_attention(q, kp, vp, **ok)
    with pytest.raises(TypeError, match="q_start must have dtype int32"):
        _C.paged_attention(q, kp, vp, **{**ok, "q_start": q_start.astype(np.int64)})
    with pytest.raises(ValueError, match="q_start must run from 0"):
        _C.paged_attention(q, kp, vp, **{**ok, "q_start": np.array([0, 3, 5], np.int32)})
    bad = table.copy()
    bad[1, 0] = kp.shape[0]
    with pytest.raises(ValueError, match=r"block_table\[1, 0\] = .* is not a block of the pool"):
        _C.paged_attention(q, kp, vp, **{**ok, "block_table": bad})
    with pytest.raises(ValueError, match="needs 3 blocks of its table"):
        _C.paged_attention(q, kp, vp, **{**ok, "first_pos": np.array([0, 9], np.int32)})
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        _C.paged_attention(q[:, :3].copy(), kp, vp, **ok)
    with pytest.raises(ValueError, match=r"slots\[0\] = 99 is outside the pool"):
        k = np.zeros((1, 2, 8), np.float32)
        _C.paged_kv_write(k, k.copy(), kp, vp, np.array([99], np.int32))
    with pytest.raises(ValueError, match="k_pool"):
        _C.paged_kv_write(
            np.zeros((1, 3, 8), np.float32),
            np.zeros((1, 3, 8), np.float32),
            kp,
            vp,
            np.array([0], np.int32),
        )


@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize(("window", "block_size"), [(1, 16), (17, 16), (64, 16), (100, 64), (5, 1)])
def test_sliding_window_and_softcap(isa, threads, mix, window, block_size):
    """Each query sees its last `window` keys; pool blocks wholly before every row's window
    are never read (their table entries are poisoned)."""
    rng = np.random.default_rng(window * 7 + block_size)
    seqs = MIXES[mix]
    q, kp, vp, q_start, first_pos, table, dense = make_batch(rng, seqs, 6, 2, 64, block_size)
    for s, (p, _n) in enumerate(seqs):
        dead = max(0, p - window + 1) // block_size  # blocks before the first row's window
        table[s, :dead] = -7
    for softcap in (0.0, 2.0):
        got = _C.paged_attention(
            q, kp, vp, q_start=q_start, first_pos=first_pos, block_table=table,
            window=window, softcap=softcap, isa=isa,
        )  # fmt: skip
        for s, (p, _n) in enumerate(seqs):
            rows = slice(q_start[s], q_start[s + 1])
            ref, bound = attention_reference(
                q[rows][None], *dense[s], start_pos=p, window=window, softcap=softcap
            )
            assert_gemm_close(got[rows], ref[0], bound[0], f"sequence {s}, softcap {softcap}")
