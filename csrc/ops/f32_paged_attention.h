// Attention over a paged KV cache, for a ragged batch of sequences (the serving engine's step):
// each sequence brings any number of new query tokens (a prompt chunk, or one decode token) and
// reads its keys through a block table. Portable driver around the per-ISA kernels of
// kernels/f32_attention_kernels.h; no intrinsics here.
//
// The pool: k_pool, v_pool [n_blocks, n_kv_heads, block_size, head_dim]. Within a block the keys
// of one KV head are contiguous, so a block is a run of keys the partial kernels stream as they
// stream a dense cache. Key j of sequence s lives in block block_table[s, j / block_size] at
// offset j % block_size.
#pragma once
#include <cstdint>

#include "kernels/f32_attention_kernels.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {

// pool[slot / block_size, h, slot % block_size, :] = new[t, h, :] for new = k, v: [tokens,
// n_kv_heads, head_dim], slot = slots[t]. Requires every slot < n_blocks * block_size and no two
// tokens writing the same slot; no array may overlap another.
struct F32PagedKvWriteArgs {
  int64_t tokens, n_kv_heads, head_dim, block_size;
  const float* k;
  const float* v;
  float* k_pool;
  float* v_pool;
  const int32_t* slots;  // [tokens]
};
void f32_paged_kv_write(const F32PagedKvWriteArgs& args, runtime::ThreadPool& pool);

// Causal attention of a ragged batch: sequence s owns query rows q_start[s] .. q_start[s+1] - 1
// of q [tokens, n_heads, head_dim], at positions first_pos[s], first_pos[s] + 1, ...; the query
// at position p sees keys 0 .. p of its sequence (already written to the pool), or with a sliding
// window (window > 0) keys p - window + 1 .. p; scores soft-capped when softcap > 0 (see
// f32_attention). out has q's
// shape. Requires n_heads % n_kv_heads == 0, q_start nondecreasing from 0, every block id of the
// first ceil((first_pos[s] + rows of s) / block_size) entries of each table row valid (with a
// window, those of blocks wholly before every row's window are never read).
//
// The keys of a query block are walked block by block of the pool, each giving a partial
// online-softmax state, then merged in block order. How a sequence's rows are computed depends
// on that sequence alone (its own row count picks the kernel, its positions fix the pool
// blocks), never on the other sequences of the batch or the thread count: a sequence's result is
// bit-identical in any batch.
struct F32PagedAttentionArgs {
  int64_t n_seqs, n_heads, n_kv_heads, head_dim, block_size, table_stride;
  const float* q;       // [tokens, n_heads, head_dim]
  const float* k_pool;  // [n_blocks, n_kv_heads, block_size, head_dim]
  const float* v_pool;
  float* out;                  // [tokens, n_heads, head_dim]
  const int32_t* q_start;      // [n_seqs + 1]
  const int32_t* first_pos;    // [n_seqs]
  const int32_t* block_table;  // [n_seqs, table_stride]
  float scale;
  int64_t window = 0;  // keys per query, itself included (0: no window)
  float softcap = 0.f;
};
void f32_paged_attention(const kernels::F32AttentionKernels& kt, const F32PagedAttentionArgs& args,
                         runtime::ThreadPool& pool);

}  // namespace pyengine::ops
