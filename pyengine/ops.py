"""Kernel-level building blocks users may call directly.

``Linear(weight, bias=None, *, isa=None)`` packs ``weight`` ([out_features, in_features] float32,
torch.nn.Linear's layout) once, at construction; ``lin(x, out=None, residual=None)`` computes
``x @ weight.T + bias (+ residual)`` for ``x`` of shape ``[..., in_features]``.

``matmul(a, b, *, isa=None)`` is a general float32 ``a @ b`` for 2-D and batched 3-D operands.

``kv_cache_write(k, v, k_cache, v_cache, start_pos)`` stores new keys/values
([batch, q_len, n_kv_heads, head_dim]) at positions ``start_pos ...`` of a KV cache
([batch, n_kv_heads, max_ctx, head_dim], positions contiguous per head).

``attention(q, k_cache, v_cache, *, start_pos, key_begin=None, key_end=None, causal=True,
scale=None, out=None, isa=None)`` is softmax(q k^T * scale + mask) v for queries
[batch, q_len, n_heads, head_dim] at positions ``start_pos + t`` over that cache, with GQA/MQA
(query head h uses KV head h // (n_heads // n_kv_heads)). Query t of batch row b sees keys
``key_begin[b] <= j < key_end[b]`` and, when causal, ``j <= start_pos + t``; one that sees no
key gets zeros.

All of them validate their arguments and raise TypeError (dtype) or ValueError (shape, layout,
range) naming the argument; all release the GIL while they compute.
"""

from pyengine._C import Linear, attention, kv_cache_write, matmul

__all__ = ["Linear", "attention", "kv_cache_write", "matmul"]
