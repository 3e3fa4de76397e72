"""pyengine.ops.attention against the float64 reference of tests/helpers.py (the spec), on every
ISA level, at 1 and 2 threads: prefill (causal, continuing a cache), decode (split along the
keys), GQA/MQA, per-row key ranges (left and right padding), odd head dims, memory safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import (
    assert_canary_intact,
    assert_gemm_close,
    attention_reference,
    guarded,
    with_canary,
)

import pyengine
from pyengine.ops import attention, kv_cache_write

# Keys per partial state of a split decode step (csrc/ops/f32_attention.h): lengths around it
# and a few times it exercise the split and the merge.
DECODE_CHUNK = 256


def make_inputs(rng, batch, q_len, n_heads, n_kv_heads, head_dim, max_ctx):
    q = rng.standard_normal((batch, q_len, n_heads, head_dim), dtype=np.float32)
    k_cache = rng.standard_normal((batch, n_kv_heads, max_ctx, head_dim), dtype=np.float32)
    v_cache = rng.standard_normal((batch, n_kv_heads, max_ctx, head_dim), dtype=np.float32)
    return q, k_cache, v_cache


def check(isa, q, k_cache, v_cache, what="", **kwargs):
    """Runs attention and compares it with the reference; returns the output."""
    got = attention(q, k_cache, v_cache, isa=isa, **kwargs)
    assert got.shape == q.shape and got.dtype == np.float32
    ref, bound = attention_reference(q, k_cache, v_cache, **kwargs)
    assert_gemm_close(got, ref, bound, what or f"q {q.shape}, cache {k_cache.shape}, {kwargs}")
    return got


@pytest.mark.parametrize("head_dim", [1, 3, 17, 32, 64, 80, 96, 128])
def test_head_dims(isa, threads, head_dim):
    rng = np.random.default_rng(head_dim)
    # Prefill continuing a cache (start_pos > 0), batch rows with different left padding.
    q, kc, vc = make_inputs(rng, 2, 33, 6, 2, head_dim, 40)
    check(isa, q, kc, vc, start_pos=5, key_begin=np.array([0, 9]))
    # Decode against a cache long enough to be split in two.
    q, kc, vc = make_inputs(rng, 1, 1, 6, 2, head_dim, 301)
    check(isa, q, kc, vc, start_pos=300)


@pytest.mark.parametrize("q_len", [1, 2, 7, 33, 129, 300])
def test_prefill_lengths(isa, threads, q_len):
    rng = np.random.default_rng(q_len)
    q, kc, vc = make_inputs(rng, 1, q_len, 9, 3, 32, q_len)
    check(isa, q, kc, vc, start_pos=0)
    # The same prompt after 20 cached tokens, head_dim with a masked tail.
    q, kc, vc = make_inputs(rng, 1, q_len, 9, 3, 17, q_len + 20)
    check(isa, q, kc, vc, start_pos=20)


@pytest.mark.parametrize("head_dim", [1, 3, 17, 32, 33, 64, 80, 96, 128])
@pytest.mark.parametrize(("n_heads", "n_kv_heads"), [(2, 2), (6, 2), (16, 1)])
def test_tiled_shapes(isa, threads, head_dim, n_heads, n_kv_heads):
    """Many query rows take the tiled kernel: key blocks of 48, score tiles of 3 to 8 keys,
    rows in vectors of 4 to 16 lanes, head dims in tiles of 3 to 8. Lengths on both sides of
    each boundary, causal diagonals inside a block, a key range starting mid-block."""
    rng = np.random.default_rng(head_dim * 100 + n_heads)
    cases = [(47, 0, True), (49, 48, True), (97, 3, False), (16, 80, True)]
    for q_len, start_pos, causal in cases:
        q, kc, vc = make_inputs(rng, 2, q_len, n_heads, n_kv_heads, head_dim, start_pos + q_len)
        check(isa, q, kc, vc, start_pos=start_pos, causal=causal, key_begin=np.array([0, 7]))


@pytest.mark.parametrize("n_keys", [1, 17, 255, 257, 1000, 1500])
def test_decode_key_lengths(isa, threads, n_keys):
    rng = np.random.default_rng(n_keys)
    q, kc, vc = make_inputs(rng, 1, 1, 9, 3, 64, n_keys + 3)
    check(isa, q, kc, vc, start_pos=n_keys - 1)
    # Two new tokens at once (speculative decoding): the first must not see the second.
    if n_keys >= 2:
        q, kc, vc = make_inputs(rng, 2, 2, 4, 1, 80, n_keys)
        check(isa, q, kc, vc, start_pos=n_keys - 2, key_begin=np.array([0, n_keys // 3]))


@pytest.mark.parametrize(
    ("n_heads", "n_kv_heads"), [(4, 4), (3, 1), (8, 2), (9, 3), (12, 3), (16, 1), (32, 1)]
)
def test_gqa_ratios(isa, threads, n_heads, n_kv_heads):
    rng = np.random.default_rng(n_heads * 10 + n_kv_heads)
    q, kc, vc = make_inputs(rng, 2, 45, n_heads, n_kv_heads, 64, 60)
    check(isa, q, kc, vc, start_pos=3)
    q, kc, vc = make_inputs(rng, 2, 1, n_heads, n_kv_heads, 64, 700)
    check(isa, q, kc, vc, start_pos=600, key_begin=np.array([0, 200]))


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("bound_dtype", [np.int32, np.int64])
def test_batch_key_ranges(isa, threads, causal, bound_dtype):
    rng = np.random.default_rng(7)
    q, kc, vc = make_inputs(rng, 3, 20, 6, 3, 17, 64)
    key_begin = np.array([0, 5, 30], bound_dtype)
    key_end = np.array([25, 18, 64], bound_dtype)
    check(isa, q, kc, vc, start_pos=10, key_begin=key_begin, key_end=key_end, causal=causal)
    # Decode rows of different lengths, long enough for the split.
    q, kc, vc = make_inputs(rng, 3, 1, 6, 3, 17, 900)
    key_begin = np.array([0, 300, 880], bound_dtype)
    key_end = np.array([900, 600, 890], bound_dtype)
    check(isa, q, kc, vc, start_pos=899, key_begin=key_begin, key_end=key_end, causal=causal)


def test_encoder_right_padding(isa, threads):
    """Bidirectional attention of a right-padded batch: row b's tokens are 0 .. key_end[b] - 1."""
    rng = np.random.default_rng(3)
    q, kc, vc = make_inputs(rng, 3, 70, 4, 4, 32, 70)
    key_end = np.array([70, 33, 1])
    check(isa, q, kc, vc, start_pos=0, key_end=key_end, causal=False)


def test_rows_without_keys_are_zero(isa, threads):
    rng = np.random.default_rng(4)
    # Left padding longer than some of the prompt: queries before key_begin see nothing.
    q, kc, vc = make_inputs(rng, 2, 12, 4, 2, 17, 12)
    got = check(isa, q, kc, vc, start_pos=0, key_begin=np.array([0, 8]))
    assert (got[1, :8] == 0).all() and (got[1, 8:] != 0).any()
    # Empty key ranges, in prefill and in (split) decode.
    q, kc, vc = make_inputs(rng, 2, 3, 4, 2, 17, 600)
    got = attention(q, kc, vc, start_pos=597, key_end=np.array([0, 600]), isa=isa)
    assert (got[0] == 0).all() and np.isfinite(got).all()
    q = np.ascontiguousarray(q[:, :1])
    got = attention(q, kc, vc, start_pos=597, key_begin=np.array([598, 598]), isa=isa)
    assert (got == 0).all()


def test_keys_outside_the_range_are_never_read(isa, threads):
    """Cache entries outside [key_begin, key_end) are NaN: reading any of them would show."""
    rng = np.random.default_rng(5)
    for q_len, start_pos, max_ctx in [(40, 0, 48), (1, 599, 700)]:
        q, kc, vc = make_inputs(rng, 2, q_len, 6, 2, 17, max_ctx)
        key_begin = np.array([3, 100 if q_len == 1 else 10])
        key_end = np.full(2, start_pos + q_len)
        j = np.arange(max_ctx)
        outside = (j < key_begin[:, None]) | (j >= key_end[:, None])  # [batch, max_ctx]
        for cache in (kc, vc):
            cache[np.broadcast_to(outside[:, None, :, None], cache.shape)] = np.nan
        for causal in (True, False):
            kwargs = dict(start_pos=start_pos, key_begin=key_begin, key_end=key_end, causal=causal)
            assert np.isfinite(check(isa, q, kc, vc, **kwargs)).all()


def test_causal_mask_is_exact(isa, threads):
    """Scores grow by 30 per position: each query's output is its own position's value to within
    e^-30, so a query that saw one key too many or too few would be off by O(1)."""
    rng = np.random.default_rng(6)
    n_keys, d = 300, 5
    positions = np.arange(n_keys, dtype=np.float32)
    kc = np.zeros((1, 1, n_keys, d), np.float32)
    kc[0, 0, :, 0] = positions
    vc = rng.standard_normal((1, 1, n_keys, d), dtype=np.float32)
    for q_len, start_pos in [(n_keys, 0), (1, 99), (2, 256), (7, 200)]:
        q = np.zeros((1, q_len, 2, d), np.float32)
        q[..., 0] = 30.0
        got = check(isa, q, kc, vc, start_pos=start_pos, scale=1.0)
        want = vc[0, 0, start_pos : start_pos + q_len]
        np.testing.assert_allclose(got[0, :, 0], want, atol=1e-5)


def test_scale_and_out(isa, threads):
    rng = np.random.default_rng(8)
    q, kc, vc = make_inputs(rng, 1, 9, 4, 2, 32, 20)
    check(isa, q, kc, vc, start_pos=11, scale=0.37)
    out = np.full(q.shape, np.nan, np.float32)
    ret = attention(q, kc, vc, start_pos=11, out=out, isa=isa)
    assert ret is out
    np.testing.assert_array_equal(out, attention(q, kc, vc, start_pos=11, isa=isa))
    assert attention(q[:, :0], kc, vc, start_pos=11, isa=isa).shape == (1, 0, 4, 32)


@pytest.mark.parametrize(
    ("q_len", "start_pos", "max_ctx"), [(1, 1499, 1500), (2, 700, 800), (300, 0, 300)]
)
def test_thread_count_does_not_change_bits(isa, q_len, start_pos, max_ctx):
    rng = np.random.default_rng(q_len)
    q, kc, vc = make_inputs(rng, 2, q_len, 9, 3, 64, max_ctx)
    previous = pyengine.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            pyengine.set_num_threads(n)
            results.append(attention(q, kc, vc, start_pos=start_pos, isa=isa))
    finally:
        pyengine.set_num_threads(previous)
    for got in results[1:]:
        np.testing.assert_array_equal(got, results[0])


@pytest.mark.parametrize("head_dim", [1, 17, 64])
@pytest.mark.parametrize(("q_len", "start_pos"), [(1, 299), (37, 263)])
def test_guard_pages_and_canaries(isa, threads, head_dim, q_len, start_pos):
    """Inputs end right before an inaccessible page, and the output is fenced by canaries."""
    rng = np.random.default_rng(head_dim)
    q, kc, vc = make_inputs(rng, 2, q_len, 6, 3, head_dim, start_pos + q_len)
    q, kc, vc = guarded(q), guarded(kc), guarded(vc)
    out, backing = with_canary(q.shape)
    attention(q, kc, vc, start_pos=start_pos, out=out, isa=isa)
    assert_canary_intact(backing, out.size)
    ref, bound = attention_reference(q, kc, vc, start_pos=start_pos)
    assert_gemm_close(out, ref, bound, "guarded")
    out = guarded(np.zeros(q.shape, np.float32))
    attention(q, kc, vc, start_pos=start_pos, out=out, isa=isa, causal=False)
    ref, bound = attention_reference(q, kc, vc, start_pos=start_pos, causal=False)
    assert_gemm_close(out, ref, bound, "guarded out")


def test_decode_matches_full_recompute(isa, threads):
    """A cache filled by a prompt and then token by token, attended at every step, gives the
    rows of one prefill call over the whole sequence (both within the reference's tolerance)."""
    rng = np.random.default_rng(9)
    batch, n_heads, n_kv, d, prompt, steps = 2, 9, 3, 64, 250, 12  # crosses DECODE_CHUNK
    total = prompt + steps
    q, k, v = (
        rng.standard_normal((batch, total, h, d), dtype=np.float32) for h in (n_heads, n_kv, n_kv)
    )
    key_begin = np.array([0, 4])  # row 1 is left-padded by 4 tokens
    k_cache = np.zeros((batch, n_kv, total + 5, d), np.float32)
    v_cache = np.zeros_like(k_cache)
    stepwise = np.empty_like(q)

    def steps_of(x, t0, t1):
        return np.ascontiguousarray(x[:, t0:t1])

    kv_cache_write(steps_of(k, 0, prompt), steps_of(v, 0, prompt), k_cache, v_cache, 0)
    stepwise[:, :prompt] = attention(
        steps_of(q, 0, prompt), k_cache, v_cache, start_pos=0, key_begin=key_begin, isa=isa
    )
    for t in range(prompt, total):
        kv_cache_write(steps_of(k, t, t + 1), steps_of(v, t, t + 1), k_cache, v_cache, t)
        stepwise[:, t : t + 1] = attention(
            steps_of(q, t, t + 1), k_cache, v_cache, start_pos=t, key_begin=key_begin, isa=isa
        )
    assert total > DECODE_CHUNK
    full_k = np.ascontiguousarray(k.transpose(0, 2, 1, 3))
    full_v = np.ascontiguousarray(v.transpose(0, 2, 1, 3))
    full = attention(q, full_k, full_v, start_pos=0, key_begin=key_begin, isa=isa)
    ref, bound = attention_reference(q, full_k, full_v, start_pos=0, key_begin=key_begin)
    assert_gemm_close(full, ref, bound, "one prefill call")
    assert_gemm_close(stepwise, full.astype(np.float64), 2 * bound, "step by step vs prefill")


def test_concurrent_python_threads(isa):
    """The GIL is released; calls from several Python threads at once each get their result."""
    rng = np.random.default_rng(10)
    cases = [make_inputs(rng, 1, q_len, 9, 3, 64, 600) for q_len in (1, 1, 40, 3)]
    want = [attention(*case, start_pos=560, isa=isa) for case in cases]
    got = [None] * len(cases)

    def work(i):
        for _ in range(20):
            got[i] = attention(*cases[i], start_pos=560, isa=isa)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_errors():
    q = np.zeros((2, 3, 6, 8), np.float32)
    kc = np.zeros((2, 3, 16, 8), np.float32)

    in_k_cache = kc.reshape(-1)[: q.size].reshape(q.shape)

    def call(q=q, kc=kc, vc=kc, **kwargs):
        kwargs.setdefault("start_pos", 0)
        return attention(q, kc, vc, **kwargs)

    cases = [
        (dict(q=q.astype(np.float64)), TypeError, "q must have dtype float32, got float64"),
        (dict(kc=[[1.0]]), TypeError, "k_cache must be a numpy.ndarray"),
        (dict(q=q[0]), ValueError, r"q must be 4-D, got shape \(3, 6, 8\)"),
        (dict(q=q.transpose(0, 2, 1, 3)), ValueError, "q must be C-contiguous"),
        (dict(q=q[:1]), ValueError, r"q must have shape \(batch, q_len, n_heads, head_dim\)"),
        (dict(q=q[..., :4].copy()), ValueError, r"q must have shape .* = \(2, q_len, n_heads, 8\)"),
        (dict(vc=kc[:, :, :8].copy()), ValueError, r"v_cache must have shape \(2, 3, 16, 8\)"),
        (dict(q=q[:, :, :4].copy()), ValueError, r"n_heads \(4.*multiple of n_kv_heads \(3"),
        (dict(start_pos=14), ValueError, "context overflow: start_pos \\+ q_len = 14 \\+ 3"),
        (dict(start_pos=-1), ValueError, "start_pos must be >= 0"),
        (dict(key_end=np.array([3, 17])), ValueError, r"key_end\[1\] = 17 .*max_ctx = 16"),
        (dict(key_begin=np.array([-2, 0])), ValueError, r"key_begin\[0\] must be >= 0, got -2"),
        (dict(key_begin=[0, 0]), TypeError, "key_begin must be a numpy.ndarray of int32 or int64"),
        (dict(key_end=np.ones(2)), TypeError, "key_end must have dtype int32 or int64, got float"),
        (dict(key_end=np.ones(3, np.int64)), ValueError, r"key_end must have shape \(2,\)"),
        (dict(out=np.zeros((2, 3, 6, 4), np.float32)), ValueError, "out must have shape"),
        (dict(out=np.zeros(q.shape, np.float64)), TypeError, "out must have dtype float32"),
        (dict(out=q), ValueError, "out must not share memory with q"),
        (dict(out=in_k_cache), ValueError, "out must not share memory with k_cache"),
        (dict(isa="avx9"), ValueError, "unknown ISA level 'avx9'"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            call(**kwargs)
    readonly = np.zeros(q.shape, np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        call(out=readonly)
    with pytest.raises(TypeError):
        attention(q, kc, kc, start_pos=0, scale="big")
    with pytest.raises(TypeError):
        attention(q, kc, kc)  # start_pos is required


# ---- sliding window and soft-capping (Mistral, Gemma 2/3, Phi-3) ------------------------------


@pytest.mark.parametrize("window", [1, 3, 17, 64, 65, 129])
@pytest.mark.parametrize(("q_len", "start_pos"), [(1, 300), (7, 40), (33, 0), (130, 5), (3, 2)])
def test_sliding_window(isa, threads, window, q_len, start_pos):
    """Row kernel (few rows), tiled kernel (many), split decode: each row sees its own window,
    which may start inside a key block, below the key range or past the left padding."""
    rng = np.random.default_rng(window * 1000 + q_len)
    q, kc, vc = make_inputs(rng, 2, q_len, 6, 2, 64, start_pos + q_len + 3)
    check(isa, q, kc, vc, start_pos=start_pos, key_begin=np.array([0, 4]), window=window)


@pytest.mark.parametrize("head_dim", [3, 32, 80, 256])
def test_window_head_dims_and_groups(isa, threads, head_dim):
    rng = np.random.default_rng(head_dim)
    for heads, kv in [(4, 1), (8, 8), (9, 3)]:
        q, kc, vc = make_inputs(rng, 1, 70, heads, kv, head_dim, 100)
        check(isa, q, kc, vc, start_pos=30, window=40)


@pytest.mark.parametrize("softcap", [0.5, 5.0, 50.0])
@pytest.mark.parametrize(("q_len", "start_pos"), [(1, 600), (65, 0), (9, 20)])
def test_softcap(isa, threads, softcap, q_len, start_pos):
    rng = np.random.default_rng(int(softcap * 10) + q_len)
    q, kc, vc = make_inputs(rng, 1, q_len, 4, 2, 64, start_pos + q_len)
    q *= 4.0  # scores well past the cap, where tanh bends
    check(isa, q, kc, vc, start_pos=start_pos, softcap=softcap)
    check(isa, q, kc, vc, start_pos=start_pos, softcap=softcap, window=30, scale=0.3)


def test_window_is_exact_and_wider_window_is_full(isa):
    """A window as long as the context changes nothing (bit for bit); keys outside a window are
    never read (NaN there would show)."""
    rng = np.random.default_rng(5)
    q, kc, vc = make_inputs(rng, 1, 40, 4, 2, 64, 90)
    full = attention(q, kc, vc, start_pos=50, isa=isa)
    np.testing.assert_array_equal(attention(q, kc, vc, start_pos=50, window=90, isa=isa), full)
    kc[:, :, :21] = np.nan  # position 50 with window 30 sees keys 21 ..
    vc[:, :, :21] = np.nan
    got = attention(q, kc, vc, start_pos=50, window=30, isa=isa)
    assert np.isfinite(got).all()


def test_window_and_softcap_errors():
    q = np.zeros((1, 2, 2, 8), np.float32)
    kc = np.zeros((1, 2, 4, 8), np.float32)
    with pytest.raises(ValueError, match="window must be in"):
        attention(q, kc, kc, start_pos=0, window=-1)
    with pytest.raises(ValueError, match="needs causal=True"):
        attention(q, kc, kc, start_pos=0, window=2, causal=False)
    with pytest.raises(ValueError, match="softcap must be a finite number"):
        attention(q, kc, kc, start_pos=0, softcap=float("nan"))
