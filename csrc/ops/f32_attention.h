// Portable fp32 attention drivers around the per-ISA kernels of kernels/f32_attention_kernels.h:
// the KV-cache layout and its writer, the query/key tiling, the threading split and the decode
// split/merge. No intrinsics here.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/isa_level.h"
#include "kernels/f32_attention_kernels.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {

using kernels::F32AttentionKernels;

const F32AttentionKernels& f32_attention_kernels(cpu::IsaLevel level);

// The KV cache of one layer, per head with positions contiguous (the rows the kernels stream):
//   k_cache, v_cache: [batch, n_kv_heads, max_ctx, head_dim]
// cache[b, h, start_pos + t, :] = new[b, t, h, :] for new = k, v: [batch, q_len, n_kv_heads,
// head_dim]. Requires start_pos + q_len <= max_ctx; no array may overlap another.
struct F32KvCacheWriteArgs {
  int64_t batch, q_len, n_kv_heads, head_dim, max_ctx, start_pos;
  const float* k;
  const float* v;
  float* k_cache;
  float* v_cache;
};
void f32_kv_cache_write(const F32KvCacheWriteArgs& args, runtime::ThreadPool& pool);

// out[b, t, h, :] = sum_j softmax_j(s_j) v_j, s_j = scale * q[b, t, h, :] . k_j (soft-capped when
// softcap > 0: softcap * tanh(s_j / softcap)), over the keys j that query (b, t) sees:
// key_begin[b] <= j < key_end[b] and, when causal, j <= start_pos + t and, with a sliding window
// (window > 0, causal only), j > start_pos + t - window; k_j, v_j are
// the cache rows of KV head h / (n_heads / n_kv_heads). A query that sees no key gets zeros.
// Requires n_heads % n_kv_heads == 0, 0 <= key_begin[b], key_end[b] <= max_ctx, sizes < 2^31;
// out may not overlap the inputs. The result does not depend on the pool's thread count.
struct F32AttentionArgs {
  int64_t batch, q_len, n_heads, n_kv_heads, head_dim, max_ctx;
  const float* q;        // [batch, q_len, n_heads, head_dim]
  const float* k_cache;  // [batch, n_kv_heads, max_ctx, head_dim]
  const float* v_cache;  // [batch, n_kv_heads, max_ctx, head_dim]
  float* out;            // [batch, q_len, n_heads, head_dim]
  int64_t start_pos;
  const int64_t* key_begin;  // [batch]
  const int64_t* key_end;    // [batch]
  bool causal;
  float scale;
  int64_t window = 0;  // keys per query, itself included (0: no window)
  float softcap = 0.f;
};
void f32_attention(const F32AttentionKernels& kt, const F32AttentionArgs& args,
                   runtime::ThreadPool& pool);

// Keys per partial state when a decode step splits its keys (see f32_attention).
constexpr int64_t kAttentionDecodeChunk = 256;

}  // namespace pyengine::ops
