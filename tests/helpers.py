"""Shared test helpers: the numerical tolerance and memory-safety fixtures, stated once."""

from __future__ import annotations

import ctypes
import mmap

import numpy as np

import pyengine
from pyengine import _C

ISA_LEVELS = _C.supported_isa_levels()
EPS32 = float(np.finfo(np.float32).eps)

# Awkward sizes every kernel test sweeps: around vector widths, tile heights and cache blocks.
AWKWARD_SIZES = (1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257)


def gemm_reference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a @ b in float64, and the elementwise error bound any fp32 summation order must meet.

    Error analysis of a length-K dot product in fp32 (each product and partial sum rounded once,
    in any order, FMA or not): |fl(a.b) - a.b| <= K * u * sum_k |a_k| |b_k|, u = eps/2. We allow
    2 * K * eps (four times that) plus one ulp of the result for the final conversion. This is the
    only tolerance used for random-valued GEMM tests.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    k = a.shape[-1]
    bound = 2.0 * max(k, 1) * EPS32 * (np.abs(a64) @ np.abs(b64))
    ref = a64 @ b64
    return ref, bound + EPS32 * np.abs(ref)


def assert_gemm_close(actual: np.ndarray, ref: np.ndarray, bound: np.ndarray, what: str = ""):
    err = np.abs(actual.astype(np.float64) - ref)
    bad = err > bound
    if bad.any():
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"{what}: {int(bad.sum())} elements beyond the error bound; first at {idx}: "
            f"got {actual[idx]!r}, want {ref[idx]!r} (bound {bound[idx]:.3g})"
        )


def small_int_matrix(rng: np.random.Generator, shape, lo: int = -4, hi: int = 4) -> np.ndarray:
    """Integer-valued float32: every product and partial sum below 2**24 is exact in fp32."""
    return rng.integers(lo, hi + 1, size=shape).astype(np.float32)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_PAGE = mmap.PAGESIZE
_keep_alive: list = []


def guarded(values: np.ndarray) -> np.ndarray:
    """A copy of `values` whose last byte sits right before an inaccessible page.

    Any read or write past the end faults at once (the test process dies), instead of silently
    touching a neighbour.
    """
    values = np.ascontiguousarray(values)
    nbytes = values.nbytes
    data_pages = (nbytes + _PAGE - 1) // _PAGE or 1
    buf = mmap.mmap(-1, (data_pages + 1) * _PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    guard = base + data_pages * _PAGE
    if _libc.mprotect(guard, _PAGE, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    start = data_pages * _PAGE - nbytes
    arr = np.frombuffer(buf, dtype=values.dtype, count=values.size, offset=start)
    arr = arr.reshape(values.shape)
    arr[...] = values
    _keep_alive.append(buf)  # the mapping must outlive every view of it
    return arr


CANARY = np.float32(-12345.678)


def with_canary(shape, pad: int = 67) -> tuple[np.ndarray, np.ndarray]:
    """(view, backing): a C-contiguous float32 view with `pad` canary values on both sides."""
    n = int(np.prod(shape))
    backing = np.full(n + 2 * pad, CANARY, dtype=np.float32)
    return backing[pad : pad + n].reshape(shape), backing


def assert_canary_intact(backing: np.ndarray, n: int, pad: int = 67):
    assert (backing[:pad] == CANARY).all(), "write before the start of the output"
    assert (backing[pad + n :] == CANARY).all(), "write past the end of the output"


# ------------------------------------------------------------------------------------------------
# Elementwise and reduction ops (norms, softmax, activations, RoPE): the one tolerance rule.
# ------------------------------------------------------------------------------------------------

# The vector/reduced dimension every op test sweeps: the awkward sizes, 1000, and real model widths
# (all-MiniLM-L6-v2 384, SmolLM2-135M 576 and 1536, Llama-7B 4096).
OP_WIDTHS = AWKWARD_SIZES + (1000, 384, 576, 1536, 4096)

OP_ULPS = 8
FP32_TINY = float(np.finfo(np.float32).tiny)


def op_bound(ref: np.ndarray, n: int = 1, scale=0.0) -> np.ndarray:
    """The error bound of every elementwise and row-reduction op test, from error analysis:

        |got - ref| <= OP_ULPS * eps * n * (|ref| + scale) + FP32_TINY

    ref: the float64 reference computed from the same fp32 inputs (the spec).
    n: the length of the reduction each output depends on (1 for elementwise ops). A fp32 sum of
       n terms, in any order, is off by at most (n - 1) * (eps / 2) * sum(|terms|).
    scale: the magnitude of intermediate terms that cancel in the result, where the op's error
       analysis has them (e.g. gelu's 0.5 x (1 + tanh(.)) cancels for x < 0: scale = |x|);
       0 when the result is a product/quotient of positive factors and the relative bound holds.
    OP_ULPS = 8: a handful of roundings plus one transcendental function (<= 1.3 ulp each, see
       csrc/kernels/common/f32_math.h); one ulp is at most eps * |value|.
    FP32_TINY: below the smallest normal fp32 (1.2e-38) relative error means nothing; results
       there may flush to zero.
    Where the kernel's result is correctly rounded (add) or a copy (embedding), tests compare
    exactly instead.
    """
    ref = np.asarray(ref, np.float64)
    return OP_ULPS * EPS32 * max(n, 1) * (np.abs(ref) + scale) + FP32_TINY


def assert_op_close(got: np.ndarray, ref: np.ndarray, n: int = 1, scale=0.0, what: str = ""):
    """got (fp32) against the float64 reference within op_bound(ref, n, scale)."""
    got64 = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got64.shape == ref.shape, f"{what}: shape {got64.shape}, want {ref.shape}"
    bound = np.broadcast_to(op_bound(ref, n, scale), ref.shape)
    ok = (np.abs(got64 - ref) <= bound) | (got64 == ref) | (np.isnan(got64) & np.isnan(ref))
    if not ok.all():
        idx = tuple(int(i[0]) for i in np.nonzero(~ok))
        raise AssertionError(
            f"{what}: {int((~ok).sum())} elements beyond the error bound; first at {idx}: "
            f"got {got64[idx]!r}, want {ref[idx]!r} (bound {bound[idx]:.3g})"
        )


def assert_same_for_any_thread_count(fn):
    """fn() gives the same bits at 1, 2 and 3 threads (rows are never split across threads)."""
    previous = pyengine.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            pyengine.set_num_threads(t)
            results.append(np.array(fn(), copy=True))
    finally:
        pyengine.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


# ---------------------------------------------------------------------------------------------
# Attention: the reference (the spec) and its one tolerance rule.


def attention_visible(
    q_len: int, max_ctx: int, start_pos: int, key_begin, key_end, causal: bool, window: int = 0
) -> np.ndarray:
    """[batch, q_len, max_ctx] bool: query t of batch row b sees key j when
    key_begin[b] <= j < key_end[b] and, if causal, j <= start_pos + t and, with a sliding
    window, j > start_pos + t - window."""
    j = np.arange(max_ctx)
    kb = np.asarray(key_begin, np.int64)[:, None, None]
    ke = np.asarray(key_end, np.int64)[:, None, None]
    visible = (j >= kb) & (j < ke)
    if causal:
        visible = visible & (j <= start_pos + np.arange(q_len)[:, None])
    if window:
        visible = visible & (j > start_pos + np.arange(q_len)[:, None] - window)
    return np.broadcast_to(visible, (len(kb), q_len, max_ctx))


def attention_reference(
    q: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    *,
    start_pos: int,
    key_begin=None,
    key_end=None,
    causal: bool = True,
    scale: float | None = None,
    window: int = 0,
    softcap: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T * scale + mask) v in float64, and the elementwise error bound of fp32.
    With softcap > 0 the scores are softcap * tanh(score / softcap) (Gemma 2).

    q [batch, q_len, n_heads, D]; caches [batch, n_kv_heads, max_ctx, D]; query head h uses KV
    head h // (n_heads // n_kv_heads); masks as in attention_visible; a query that sees no key
    gives zeros (bound 0: must be exact).

    Error analysis, for one query with n visible keys, s_j = scale * q.k_j, m = max_j s_j, the
    weights w_j = softmax(s)_j, o = sum_j w_j v_j, u = eps / 2:
    - a score is a length-D dot product and one scaling: |ds_j| <= (D + 1) u a_j, with
      a_j = scale * sum_d |q_d k_jd|;
    - a probability exp(s_j - m) has the relative error ds_j, plus u |s_j - m| for its
      subtraction, plus up to 2 u |s_j - m| from the running max's rescales and the merge of
      partial results (their steps add up to at most m - s_j), plus 2 eps (f32_exp's 2 ulp) for
      each exp on its way: its own and at most n rescales or merges (a weight below FLT_MIN may
      be off by up to FLT_MIN instead, ignored here). Relative errors e_j of the weights move o
      by sum_j w_j e_j (v_j - o); a factor common to all weights cancels;
    - the fp32 sums sum_j p_j v_j and sum_j p_j, with at most n rescale roundings: 2 n u
      sum_j w_j |v_j| and 2 n u |o|; the final division, or product with a rounded 1 / l: 2 u |o|.
    With V1 = sum_j w_j |v_j| >= |o| and sum_j w_j |v_j - o| <= 2 V1 this gives
        |err| <= u sum_j w_j |v_j - o| ((D + 1) a_j + 3 |s_j - m|) + (6 n + 5) eps V1.
    We allow twice that, with |v_j - o| <= |v_j| + |o|. This is the only tolerance used for
    attention tests. Soft-capping passes a score's error on damped (tanh' <= 1) and adds its
    own: the division, tanh's 1.1 ulp and the product, under 2 eps |s_j|, counted in a_j.
    """
    batch, q_len, n_heads, d = q.shape
    n_kv, max_ctx = k_cache.shape[1], k_cache.shape[2]
    group = n_heads // n_kv
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    key_begin = np.zeros(batch, np.int64) if key_begin is None else key_begin
    key_end = np.full(batch, start_pos + q_len, np.int64) if key_end is None else key_end
    visible = attention_visible(q_len, max_ctx, start_pos, key_begin, key_end, causal, window)
    ref = np.zeros(q.shape)
    bound = np.zeros(q.shape)
    for b in range(batch):
        seen = visible[b]  # [q_len, max_ctx]
        n = seen.sum(axis=1, keepdims=True)
        for h in range(n_heads):
            qh = q[b, :, h].astype(np.float64)  # [q_len, D]
            k = k_cache[b, h // group].astype(np.float64)  # [max_ctx, D]
            v = v_cache[b, h // group].astype(np.float64)
            s = scale * (qh @ k.T)
            if softcap:
                s = softcap * np.tanh(s / softcap)
            s = np.where(seen, s, -np.inf)
            m = np.where(n > 0, s.max(axis=1, keepdims=True), 0.0)
            p = np.where(seen, np.exp(s - m), 0.0)
            w = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
            o = w @ v
            a = abs(scale) * (np.abs(qh) @ np.abs(k.T))
            if softcap:
                a = a + 2 * np.abs(np.where(seen, s, 0.0)) / (d + 1)
            c = np.where(seen, (d + 1) * a + 3 * np.abs(np.where(seen, s - m, 0.0)), 0.0)
            wc = w * c
            per_key = wc @ np.abs(v) + wc.sum(axis=1, keepdims=True) * np.abs(o)
            v1 = w @ np.abs(v)
            ref[b, :, h] = o
            bound[b, :, h] = 2 * (EPS32 / 2 * per_key + (6 * n + 5) * EPS32 * v1)
    return ref, bound
