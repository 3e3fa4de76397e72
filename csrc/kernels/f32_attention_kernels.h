// The fp32 attention kernel interface every ISA level implements, and the per-level tables.
// Portable header: no intrinsics here, so it is safe to include from any translation unit.
//
// Attention of a block of query rows is computed flash-attention style: a partial kernel walks a
// run of keys once, keeping per row only the online-softmax state below (never a rows x keys
// matrix), and `merge` turns one or more such states, each over a disjoint run of keys, into the
// output. Two partial kernels compute the same thing: `partial` one query row at a time, dot
// products along head_dim (decode: a few rows, memory bound), and `partial_tiled` all the rows
// at once like a GEMM, the rows along the vector lanes (prefill and encoders: many rows).
#pragma once
#include <cstddef>

namespace pyengine::kernels {

// Online-softmax state of R query rows over a run of keys, with s[r, j] = scale * q_r . k_j, or
// with soft-capping (softcap > 0, Gemma 2) s[r, j] = softcap * tanh(scale * q_r . k_j / softcap):
//   m[r]    = max_j s[r, j]                      (-inf when row r saw no key)
//   l[r]    = sum_j exp(s[r, j] - m[r])          (0 when row r saw no key)
//   o[r, :] = sum_j exp(s[r, j] - m[r]) * v_j    (zeros when row r saw no key)
// One state block, for R rows and head dim D, ldo = D rounded up to 16 floats:
//   o [R][ldo], then m [R], then l [R]; f32_attention_state_floats(R, D) floats in all, rounded
//   up to 16 so that consecutive blocks stay 64-byte aligned.
inline size_t f32_attention_ldo(int head_dim) { return (size_t(head_dim) + 15) / 16 * 16; }
inline size_t f32_attention_state_floats(int rows, int head_dim) {
  return (size_t(rows) * (f32_attention_ldo(head_dim) + 2) + 15) / 16 * 16;
}

// The query rows of one KV group: n_pos consecutive positions x `group` query heads sharing one
// KV head. Row r = t * group + i (position t, head i of the group).
struct F32AttentionPartialArgs {
  const float* q;  // row (t, i) at q + t * ldq + i * head_dim, head_dim floats
  size_t ldq;
  int n_pos, group, head_dim;
  const float* k;             // [keys][head_dim] of the KV head: key j at k + j * head_dim
  const float* v;             // [keys][head_dim], same layout
  int key_begin, key_end;     // the run of keys: [key_begin, key_end)
  int row_end, row_end_step;  // position t sees keys j < min(key_end, row_end + t * row_end_step);
                              // row_end_step >= 0
  // and keys j >= row_begin + t * row_begin_step (a sliding window; row_begin <= key_begin and
  // step 0 when there is none). row_begin_step >= 0, so position 0 has the lowest bound.
  int row_begin, row_begin_step;
  float scale;
  float softcap;  // > 0: scores soft-capped (see the state above); 0: plain
  float* state;   // one state block for n_pos * group rows
  // partial_tiled only: tiled_scratch_floats(n_pos * group, head_dim) floats, 64-byte aligned,
  // used by this call alone (a per-thread buffer, reused from call to call).
  float* scratch;
  // partial_tiled only, may be null: when set, the call writes what merge of its one state would
  // (row (t, i) at out + t * ldout + i * head_dim, head_dim floats) instead of the state block.
  float* out;
  size_t ldout;
};

// partial: the state of every row over the keys it sees (see F32AttentionPartialArgs): the keys
// of [key_begin, key_end) below its row end. A row that sees no key gets the empty state.
//   Accepts head_dim >= 1, n_pos >= 1, group >= 1, any key run (key_begin >= key_end: empty).
//   Writes the whole state block (partial_tiled: or, with out set, the output rows instead;
//   and its scratch) and nothing else; never reads the state block first. Reads head_dim floats
//   of each q row, and of k and v rows key_begin .. key_end - 1 only (not one float past).
//   The tiled kernel multiplies the v rows of a key block by 0 for the rows of the block that do
//   not see them (causal diagonal): a non-finite v there would reach rows that do not see it.
using F32AttentionPartialFn = void (*)(const F32AttentionPartialArgs& args);

struct F32AttentionMergeArgs {
  int n_pos, group, head_dim;
  int parts;            // state blocks to merge, >= 1, over disjoint runs of keys
  const float* state;   // part c's block at state + c * state_stride
  size_t state_stride;  // floats
  float* out;           // row (t, i) at out + t * ldout + i * head_dim, head_dim floats
  size_t ldout;
};

// merge: out[r] = sum_c w_c o_c[r] / sum_c w_c l_c[r], w_c = exp(m_c[r] - max_c m_c[r]), with
// the parts summed in order c = 0, 1, ...; a row no part saw a key of gets zeros.
//   Accepts head_dim >= 1, parts >= 1. Reads the state blocks; writes head_dim floats of each
//   output row and nothing else (the row may be written more than once on the way).
using F32AttentionMergeFn = void (*)(const F32AttentionMergeArgs& args);

struct F32AttentionKernels {
  const char* name;  // e.g. "f32_attention__avx512"
  int key_block;     // keys per online-softmax step inside partial
  F32AttentionPartialFn partial;
  F32AttentionPartialFn partial_tiled;
  size_t (*tiled_scratch_floats)(int rows, int head_dim);
  int tiled_min_rows;  // partial_tiled is the faster from this many rows (n_pos * group) on
  int tiled_lanes;     // rows per vector in partial_tiled: blocks of a multiple of it fill lanes
  F32AttentionMergeFn merge;
};

namespace generic {
const F32AttentionKernels& f32_attention_kernels();
}  // namespace generic
namespace avx2 {
const F32AttentionKernels& f32_attention_kernels();
}  // namespace avx2
namespace avx512 {
const F32AttentionKernels& f32_attention_kernels();
}  // namespace avx512

}  // namespace pyengine::kernels
