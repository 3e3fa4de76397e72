"""Kernel-level building blocks users may call directly.

``Linear(weight, bias=None, *, isa=None)`` packs ``weight`` ([out_features, in_features] float32,
torch.nn.Linear's layout) once, at construction; ``lin(x, out=None, residual=None)`` computes
``x @ weight.T + bias (+ residual)`` for ``x`` of shape ``[..., in_features]``.
``Bf16Linear`` takes the same arguments and stores the weight rounded to bfloat16 (half the
bytes; fp32 activations and accumulation; on the amx level, many-row calls round ``x`` to
bfloat16 too and run on the AMX tile unit: ``rounds_input(rows)`` says when).

``QuantLinear(data, format, in_features, bias=None, *, isa=None)`` keeps a weight in a quantized
block format (GGUF's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; ``data`` is uint8
[out_features, row_bytes], the rows' stored blocks); ``QuantLinear.quantize(weight, "Q8_0" or
"Q4_0", bias)`` encodes a float32 weight. Few-row calls quantize ``x`` per 32 values to int8 and
take integer dot products; many-row calls dequantize weight slices and run in float32 (``path``).

``matmul(a, b, *, isa=None)`` is a general float32 ``a @ b`` for 2-D and batched 3-D operands.

The row-wise and elementwise ops of a transformer layer, all float32:

- ``rms_norm(x, weight, eps, *, out=None, isa=None)`` and
  ``layer_norm(x, weight, bias, eps, *, out=None, isa=None)`` along the last axis;
- ``softmax(x, *, out=None, isa=None)`` along the last axis;
- ``add(a, b, *, out=None, isa=None)`` (same shapes);
- ``gelu(x, *, approximate="tanh", out=None, isa=None)`` ("tanh" or "none" = exact erf);
- ``swiglu(gate_up, *, out=None, isa=None)``: silu(gate) * up from ``[..., 2 * I]``;
- ``geglu(gate_up, *, out=None, isa=None)``: gelu_tanh(gate) * up from ``[..., 2 * I]`` (Gemma);
- ``scale(x, s, *, out=None, isa=None)``: ``s * x``;
- ``softcap(x, cap, *, out=None, isa=None)``: ``cap * tanh(x / cap)`` (Gemma 2's logits);
- ``embedding(table, ids, *, out=None)``: ``table[ids]``;
- ``rope(x, positions, cos, sin, *, interleaved=False, isa=None)``: rotary embedding in place.

Attention over a KV cache:

- ``kv_cache_write(k, v, k_cache, v_cache, start_pos)`` stores new keys/values
  ([batch, q_len, n_kv_heads, head_dim]) at positions ``start_pos ...`` of a KV cache
  ([batch, n_kv_heads, max_ctx, head_dim], positions contiguous per head);
- ``attention(q, k_cache, v_cache, *, start_pos, key_begin=None, key_end=None, causal=True,
  scale=None, window=0, softcap=0.0, out=None, isa=None)``: softmax(q k^T * scale + mask) v
  for queries
  [batch, q_len, n_heads, head_dim] at positions ``start_pos + t``, with GQA/MQA (query head h
  uses KV head h // (n_heads // n_kv_heads)). Query t of row b sees keys
  ``key_begin[b] <= j < key_end[b]`` and, when causal, ``j <= start_pos + t`` (and, with a
  sliding window, ``j > start_pos + t - window``); one that sees no key gets zeros. softcap > 0
  soft-caps the scores: ``softcap * tanh(s / softcap)``.

``out`` (optional) receives the result without allocation; where documented it may be an input
itself (in place). ``isa`` forces an ISA level ("generic", "avx2", "avx512", "amx"). Row-wise
results do not depend on the thread count.

All validate their arguments and raise TypeError (dtype) or ValueError (shape, layout, range)
naming the argument; all release the GIL while they compute.
"""

from pyengine._C import (
    Bf16Linear,
    Linear,
    QuantLinear,
    add,
    attention,
    embedding,
    geglu,
    gelu,
    kv_cache_write,
    layer_norm,
    matmul,
    rms_norm,
    rope,
    scale,
    softcap,
    softmax,
    swiglu,
)

__all__ = [
    "Bf16Linear",
    "Linear",
    "QuantLinear",
    "add",
    "attention",
    "embedding",
    "gelu",
    "geglu",
    "kv_cache_write",
    "layer_norm",
    "matmul",
    "rms_norm",
    "rope",
    "scale",
    "softcap",
    "softmax",
    "swiglu",
]
