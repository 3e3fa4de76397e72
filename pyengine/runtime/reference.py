"""Plain numpy references of every op the executor runs: the spec the native kernels must meet.

Each function mirrors the native kernel of the same name in pyengine._C (same arguments, same
output), computed in float64 and returned as float32. The executor's debug mode runs these next
to the native kernels op by op.
"""

from __future__ import annotations

import math

import numpy as np


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def round_bf16(x):
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32, same shape:
    what a bf16 Linear stores of its weight, and of its input on the AMX path (where the tile
    unit also reads subnormals as zero). NaN stays NaN."""
    x = np.asarray(x, dtype=np.float32)
    bits = np.ascontiguousarray(x).reshape(-1).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & 1)) & np.uint32(0xFFFF0000)
    rounded = np.where(np.isnan(x.reshape(-1)), bits | np.uint32(0x00400000), rounded)
    return rounded.astype(np.uint32).view(np.float32).reshape(x.shape)


def linear(x, weight, bias=None, residual=None):
    """x @ weight.T + bias + residual; weight [out, in]."""
    y = _f64(x) @ _f64(weight).T
    if bias is not None:
        y += _f64(bias)
    if residual is not None:
        y += _f64(residual)
    return y.astype(np.float32)


def rms_norm(x, weight, eps):
    x = _f64(x)
    return (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * _f64(weight)).astype(np.float32)


def layer_norm(x, weight, bias, eps):
    x = _f64(x)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * _f64(weight)
    if bias is not None:
        y += _f64(bias)
    return y.astype(np.float32)


def swiglu(gate_up):
    g, u = np.split(_f64(gate_up), 2, axis=-1)
    return (g / (1.0 + np.exp(-g)) * u).astype(np.float32)


_erf = np.vectorize(math.erf)


def gelu(x, approximate="tanh"):
    x = _f64(x)
    if approximate == "tanh":
        y = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    else:
        y = 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    return y.astype(np.float32)


def geglu(gate_up):
    """gelu_tanh(gate) * up over the two halves of the last axis (Gemma's MLP)."""
    x = _f64(gate_up)
    inter = x.shape[-1] // 2
    return (_f64(gelu(x[..., :inter], "tanh")) * x[..., inter:]).astype(np.float32)


def scale(x, s):
    return (_f64(x) * s).astype(np.float32)


def softcap(x, cap):
    return (cap * np.tanh(_f64(x) / cap)).astype(np.float32)


def add(a, b):
    return (_f64(a) + _f64(b)).astype(np.float32)


def softmax(x):
    x = _f64(x)
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def quantize_activations(x, block: int = 32):
    """x as the quantized-weight kernels multiply it on few-row calls: per `block` values
    along the last axis, q = round_half_even(x / d) with d = max|x| / 127 in float32, returned
    dequantized (q * d, float32)."""
    x = np.asarray(x, np.float32)
    k = x.shape[-1]
    pad = (-k) % block
    xb = np.pad(x.reshape(-1, k), ((0, 0), (0, pad))).reshape(-1, block)
    d = np.abs(xb).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np.rint(xb * inv)  # numpy rounds half to even
    out = (q.astype(np.float64) * d).reshape(-1, k + pad)[:, :k]
    return out.reshape(x.shape).astype(np.float32)


def embedding(table, ids):
    return np.asarray(table, np.float32)[np.asarray(ids)]


def rope(x, positions, cos, sin, interleaved=False):
    """Rotary embedding of x [..., n_heads, head_dim] at `positions` [...]; returns a new array.

    Pairs (i, i + r/2) (rotate-half, HF Llama) or (2i, 2i + 1) (interleaved, GGML/GPT-J), where
    r = 2 * cos.shape[1] <= head_dim; dims past r are unchanged.
    """
    y = _f64(x).copy()
    half = cos.shape[1]
    c = _f64(cos)[np.asarray(positions)][..., None, :]  # [..., 1, half]
    s = _f64(sin)[np.asarray(positions)][..., None, :]
    if interleaved:
        a, b = y[..., 0 : 2 * half : 2].copy(), y[..., 1 : 2 * half : 2].copy()
        y[..., 0 : 2 * half : 2] = a * c - b * s
        y[..., 1 : 2 * half : 2] = b * c + a * s
    else:
        a, b = y[..., :half].copy(), y[..., half : 2 * half].copy()
        y[..., :half] = a * c - b * s
        y[..., half : 2 * half] = b * c + a * s
    return y.astype(np.float32)


def kv_cache_write(k, v, k_cache, v_cache, start_pos):
    """Returns the caches after writing k, v [batch, q_len, n_kv, hd] at start_pos."""
    kc, vc = np.array(k_cache, copy=True), np.array(v_cache, copy=True)
    q_len = k.shape[1]
    kc[:, :, start_pos : start_pos + q_len] = np.swapaxes(k, 1, 2)
    vc[:, :, start_pos : start_pos + q_len] = np.swapaxes(v, 1, 2)
    return kc, vc


def attention(
    q,
    k_cache,
    v_cache,
    start_pos,
    key_begin=None,
    key_end=None,
    causal=True,
    scale=None,
    window=0,
    softcap=0.0,
):
    """softmax(q k^T * scale + mask) v per head; query t of batch b at position start_pos + t
    sees keys j in [key_begin[b], key_end[b]) (and j <= start_pos + t when causal, and
    j > start_pos + t - window with a window). softcap > 0: scores s become
    softcap * tanh(s / softcap). A query with no visible key gives zeros."""
    batch, q_len, n_heads, hd = q.shape
    n_kv = k_cache.shape[1]
    group = n_heads // n_kv
    scale = 1.0 / math.sqrt(hd) if scale is None else scale
    key_begin = np.zeros(batch, int) if key_begin is None else np.asarray(key_begin)
    key_end = np.full(batch, start_pos + q_len) if key_end is None else np.asarray(key_end)
    out = np.zeros(q.shape, np.float64)
    for b in range(batch):
        j = np.arange(int(key_end[b]))
        for t in range(q_len):
            visible = j >= key_begin[b]
            if causal:
                visible &= j <= start_pos + t
            if window:
                visible &= j > start_pos + t - window
            if not visible.any():
                continue
            for h in range(n_heads):
                keys = _f64(k_cache[b, h // group, : key_end[b]])[visible]
                vals = _f64(v_cache[b, h // group, : key_end[b]])[visible]
                s = keys @ _f64(q[b, t, h]) * scale
                if softcap:
                    s = softcap * np.tanh(s / softcap)
                p = np.exp(s - s.max())
                out[b, t, h] = (p / p.sum()) @ vals
    return out.astype(np.float32)
