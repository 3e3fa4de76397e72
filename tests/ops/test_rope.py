"""pyengine.ops.rope (rotate-half and interleaved, full and partial rotary) against its float64
numpy reference: every ISA level, 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    OP_WIDTHS,
    assert_canary_intact,
    assert_op_close,
    assert_same_for_any_thread_count,
    guarded,
    with_canary,
)

from pyengine.ops import rope

MAX_POS = 64


def rope_tables(half: int, max_pos: int = MAX_POS, base: float = 10000.0):
    """cos/sin [max_pos, half] of angles pos * base^(-k / half), as HF's rotary embedding."""
    inv_freq = base ** (-np.arange(half, dtype=np.float64) / max(half, 1))
    angles = np.arange(max_pos, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def pair_indices(half: int, interleaved: bool):
    if interleaved:
        return np.arange(0, 2 * half, 2), np.arange(1, 2 * half, 2)
    return np.arange(half), np.arange(half, 2 * half)


def rope_reference(x, positions, cos, sin, interleaved):
    """The spec, in float64, and the magnitude of its two cancelling terms per element:
    x_i' = x_i c - x_p s, x_p' = x_p c + x_i s over the pairs (i, p); the rest of x unchanged."""
    half = cos.shape[1]
    x64 = x.astype(np.float64)
    c = cos.astype(np.float64)[positions][..., None, :]  # [..., 1, half]: every head
    s = sin.astype(np.float64)[positions][..., None, :]
    i, p = pair_indices(half, interleaved)
    y, scale = x64.copy(), np.zeros_like(x64)
    y[..., i] = x64[..., i] * c - x64[..., p] * s
    y[..., p] = x64[..., p] * c + x64[..., i] * s
    scale[..., i] = np.abs(x64[..., i] * c) + np.abs(x64[..., p] * s)
    scale[..., p] = np.abs(x64[..., p] * c) + np.abs(x64[..., i] * s)
    return y, scale


def check(got, x, positions, cos, sin, interleaved, what):
    ref, scale = rope_reference(x, positions, cos, sin, interleaved)
    assert_op_close(got, ref, scale=scale, what=what)
    rotary_dim = 2 * cos.shape[1]
    np.testing.assert_array_equal(got[..., rotary_dim:], x[..., rotary_dim:], err_msg=what)


@pytest.mark.parametrize("interleaved", [False, True], ids=["rotate_half", "interleaved"])
@pytest.mark.parametrize("half", OP_WIDTHS)
def test_matches_reference(isa, threads, half, interleaved):
    """half = rotary_dim / 2 is the vector dimension; full rotary and partial (5 dims left)."""
    rng = np.random.default_rng(half)
    cos, sin = rope_tables(half)
    for tokens, heads in [(1, 1), (5, 3), (17, 2)]:
        for head_dim in (2 * half, 2 * half + 5):
            x = rng.standard_normal((tokens, heads, head_dim), dtype=np.float32)
            positions = rng.integers(0, MAX_POS, tokens)
            got = x.copy()
            assert rope(got, positions, cos, sin, interleaved=interleaved, isa=isa) is None
            what = f"{isa} tokens={tokens} heads={heads} half={half} head_dim={head_dim}"
            check(got, x, positions, cos, sin, interleaved, what)


def test_layouts_agree_bit_for_bit(isa):
    """Interleaved rope of x equals rotate-half rope of x with its pairs regrouped, exactly."""
    rng = np.random.default_rng(9)
    half, head_dim = 37, 80
    cos, sin = rope_tables(half)
    x = rng.standard_normal((6, 4, head_dim), dtype=np.float32)
    positions = rng.integers(0, MAX_POS, 6).astype(np.int32)
    i, p = pair_indices(half, interleaved=True)
    order = np.concatenate([i, p, np.arange(2 * half, head_dim)])  # interleaved -> halves
    as_halves = np.ascontiguousarray(x[..., order])
    rope(as_halves, positions, cos, sin, isa=isa)
    rope(x, positions, cos, sin, interleaved=True, isa=isa)
    np.testing.assert_array_equal(x[..., order], as_halves)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_batch_seq_layout_and_position_dtypes(isa, threads, dtype):
    rng = np.random.default_rng(4)
    cos, sin = rope_tables(32)
    x = rng.standard_normal((2, 7, 3, 64), dtype=np.float32)
    positions = np.stack([np.arange(7), np.arange(20, 27)]).astype(dtype)  # [batch, seq]
    got = x.copy()
    rope(got, positions, cos, sin, isa=isa)
    check(got, x, positions, cos, sin, False, isa)
    flat = x.reshape(14, 3, 64).copy()
    rope(flat, positions.reshape(14), cos, sin, isa=isa)
    np.testing.assert_array_equal(flat.reshape(x.shape), got)
    position_zero = x.copy()
    rope(position_zero, np.zeros((2, 7), dtype), cos, sin, isa=isa)  # cos = 1, sin = 0
    np.testing.assert_array_equal(position_zero, x)


@pytest.mark.parametrize("interleaved", [False, True], ids=["rotate_half", "interleaved"])
@pytest.mark.parametrize(
    ("tokens", "heads", "head_dim"), [(2000, 8, 64), (300, 9, 64), (64, 32, 128)]
)
def test_thread_count_does_not_change_a_bit(isa, tokens, heads, head_dim, interleaved):
    rng = np.random.default_rng(tokens)
    cos, sin = rope_tables(head_dim // 2, max_pos=4096)
    x = rng.standard_normal((tokens, heads, head_dim), dtype=np.float32)
    positions = rng.integers(0, 4096, tokens)

    def run():
        y = x.copy()
        rope(y, positions, cos, sin, interleaved=interleaved, isa=isa)
        return y

    assert_same_for_any_thread_count(run)


@pytest.mark.parametrize("interleaved", [False, True], ids=["rotate_half", "interleaved"])
def test_no_reads_or_writes_past_buffers(isa, threads, interleaved):
    rng = np.random.default_rng(2)
    for tokens, heads, head_dim, half in [
        (1, 1, 2, 1),
        (3, 2, 7, 3),
        (5, 3, 34, 17),
        (9, 4, 64, 32),
        (2, 2, 130, 65),
        (40, 8, 64, 24),
    ]:
        cos, sin = rope_tables(half)
        cos, sin = guarded(cos), guarded(sin)
        x = rng.standard_normal((tokens, heads, head_dim), dtype=np.float32)
        positions = guarded(rng.integers(0, MAX_POS, tokens).astype(np.int32))
        positions[-1] = MAX_POS - 1  # the tables' last rows, which end at the guard page
        in_guarded = guarded(x)
        rope(in_guarded, positions, cos, sin, interleaved=interleaved, isa=isa)
        check(in_guarded, x, positions, cos, sin, interleaved, f"{isa} guarded {x.shape}")
        in_canary, backing = with_canary(x.shape)
        in_canary[...] = x
        rope(in_canary, positions, cos, sin, interleaved=interleaved, isa=isa)
        assert_canary_intact(backing, x.size)
        np.testing.assert_array_equal(in_canary, in_guarded)


def test_out_of_range_positions_raise_before_anything_is_written():
    cos, sin = rope_tables(4, max_pos=16)
    x = np.ones((3, 2, 8), np.float32)
    for bad in (16, -1, 2**40):
        positions = np.array([0, 15, bad], np.int64)
        match = (
            rf"position {bad} at positions\[2\] is out of range: the cos/sin tables have 16 rows"
        )
        with pytest.raises(ValueError, match=match):
            rope(x, positions, cos, sin)
        assert (x == 1).all()
    with pytest.raises(ValueError, match=r"position 16 at positions\[0, 1\]"):
        rope(np.ones((1, 2, 2, 8), np.float32), np.array([[3, 16]], np.int32), cos, sin)


def test_errors():
    cos, sin = rope_tables(4, max_pos=16)
    x = np.ones((3, 2, 8), np.float32)
    pos = np.arange(3)
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        rope(x.astype(np.float64), pos, cos, sin)
    with pytest.raises(
        ValueError, match=r"x must be \[tokens, n_heads, head_dim\] or \[batch, seq"
    ):
        rope(np.ones((3, 8), np.float32), pos, cos, sin)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        rope(np.ones((8, 2, 3), np.float32).transpose(2, 1, 0), pos, cos, sin)
    readonly = x.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="x must be writeable"):
        rope(readonly, pos, cos, sin)
    with pytest.raises(TypeError, match="positions must have dtype int32 or int64, got float64"):
        rope(x, pos.astype(np.float64), cos, sin)
    with pytest.raises(ValueError, match=r"positions must have shape \(3,\), got \(4,\)"):
        rope(x, np.arange(4), cos, sin)
    with pytest.raises(ValueError, match=r"positions must have shape \(3,\), got \(1, 3\)"):
        rope(x, pos.reshape(1, 3), cos, sin)
    with pytest.raises(TypeError, match="cos must have dtype float32, got float64"):
        rope(x, pos, cos.astype(np.float64), sin)
    with pytest.raises(ValueError, match=r"cos must be 2-D, got shape \(64,\)"):
        rope(x, pos, cos.reshape(-1), sin)
    with pytest.raises(ValueError, match=r"sin must have shape \(16, 4\), got \(16, 3\)"):
        rope(x, pos, cos, sin[:, :3].copy())
    with pytest.raises(ValueError, match="sin must be C-contiguous"):
        rope(x, pos, cos, np.ones((4, 16), np.float32).T)
    wide_cos, wide_sin = rope_tables(5, max_pos=16)
    with pytest.raises(ValueError, match="rotary_dim = 10 exceeds head_dim = 8"):
        rope(x, pos, wide_cos, wide_sin)
    shared = np.zeros(48 + 64, np.float32)
    with pytest.raises(ValueError, match="x must not share memory with cos"):
        rope(shared[:48].reshape(3, 2, 8), pos, shared[40:104].reshape(16, 4), sin)
    with pytest.raises(TypeError):
        rope(x, pos, cos, sin, True)  # interleaved is keyword-only
    with pytest.raises(ValueError, match="unknown ISA level"):
        rope(x, pos, cos, sin, isa="avx1024")
