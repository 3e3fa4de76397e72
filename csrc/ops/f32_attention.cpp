#include "ops/f32_attention.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "cpu/by_level.h"
#include "ops/f32_attention_blocking.h"
#include "ops/int_math.h"
#include "runtime/thread_scratch.h"

namespace pyengine::ops {

const F32AttentionKernels& f32_attention_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::f32_attention_kernels,
                       &kernels::avx2::f32_attention_kernels,
                       &kernels::avx512::f32_attention_kernels, /*amx=*/nullptr);
}

namespace {

// Below this many floats a cache write is one task: a pool dispatch would cost more.
constexpr int64_t kSerialCopyFloats = 16 * 1024;

}  // namespace

void f32_kv_cache_write(const F32KvCacheWriteArgs& a, runtime::ThreadPool& pool) {
  const int64_t groups = a.batch * a.n_kv_heads;
  const size_t row_bytes = size_t(a.head_dim) * sizeof(float);
  auto copy_group = [&](int64_t g) {
    const int64_t b = g / a.n_kv_heads, h = g % a.n_kv_heads;
    const size_t dst = size_t((g * a.max_ctx + a.start_pos) * a.head_dim);
    for (int64_t t = 0; t < a.q_len; ++t) {
      const size_t src = size_t(((b * a.q_len + t) * a.n_kv_heads + h) * a.head_dim);
      const size_t at = dst + size_t(t * a.head_dim);
      std::memcpy(a.k_cache + at, a.k + src, row_bytes);
      std::memcpy(a.v_cache + at, a.v + src, row_bytes);
    }
  };
  if (groups * a.q_len * a.head_dim <= kSerialCopyFloats) {
    for (int64_t g = 0; g < groups; ++g) copy_group(g);
  } else {
    pool.parallel_for(groups, copy_group);
  }
}

// Tasks are (batch row, KV head, query block, key chunk). A query block is up to
// kQueryRowsPerTask / group positions with all the query heads of the KV group, so each block of
// K and V is read once for all of them; from tiled_min_rows rows on, the tiled kernel takes the
// block, sized by tiled_positions to fill its vector lanes. Prefill (several query blocks) takes
// all keys in one task per block, walked by the kernel with an online softmax. Decode (all
// positions in one block) has few tasks, so its keys are split into chunks of
// kAttentionDecodeChunk, each giving a partial state; a second pass merges the chunks of each group
// in chunk order. The split depends on the shapes only, never on the thread count, so results are
// bit-identical for any count.
void f32_attention(const F32AttentionKernels& kt, const F32AttentionArgs& a,
                   runtime::ThreadPool& pool) {
  if (a.batch == 0 || a.q_len == 0 || a.n_heads == 0) return;
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t d = a.head_dim;
  // Many rows per block: the GEMM-like kernel, with blocks sized to fill its vector lanes.
  // Chosen by the shapes alone (determinism).
  const auto [tiled, pos_per_block] = query_blocking(kt, group, d, a.q_len);
  const int64_t q_blocks = ceil_div(a.q_len, pos_per_block);
  // The keys batch row b can see at all: causal queries see nothing past the last position.
  // A window bounds them from below too: position 0 of the call sees keys from start_pos - window
  // + 1 on, later positions fewer still (the kernels bound each row).
  const bool windowed = a.causal && a.window > 0;
  auto key_run = [&](int64_t b) {
    int64_t begin = a.key_begin[b];
    if (windowed) begin = std::max(begin, a.start_pos - a.window + 1);
    int64_t end = a.key_end[b];
    if (a.causal) end = std::min(end, a.start_pos + a.q_len);
    return std::pair<int64_t, int64_t>(begin, std::max(begin, end));
  };
  int64_t chunks = 1;
  if (q_blocks == 1) {
    int64_t longest = 0;
    for (int64_t b = 0; b < a.batch; ++b) {
      const auto [begin, end] = key_run(b);
      longest = std::max(longest, end - begin);
    }
    chunks = std::max<int64_t>(1, ceil_div(longest, kAttentionDecodeChunk));
  }
  const int64_t groups = a.batch * a.n_kv_heads;
  const int block_rows = int(std::min(pos_per_block, a.q_len) * group);
  const size_t ld = size_t(a.n_heads * d);  // q and out: one position of one batch row
  const size_t tile_floats = tiled ? kt.tiled_scratch_floats(block_rows, int(d)) : 0;
  // Partial states, unless the tiled kernel writes the output of its one part itself.
  const size_t state_floats = kernels::f32_attention_state_floats(block_rows, int(d));
  float* states = tiled && chunks == 1 ? nullptr
                                       : runtime::thread_scratch<runtime::kScratchAttentionStates>(
                                             size_t(groups * q_blocks * chunks) * state_floats);

  pool.parallel_for(groups * q_blocks * chunks, [&](int64_t task) {
    const int64_t c = task % chunks;
    // Last query blocks first: under a causal mask they see the most keys, so the longest tasks
    // start early and the short ones fill in at the end.
    const int64_t qb = q_blocks - 1 - (task / chunks) % q_blocks;
    const int64_t g = task / (chunks * q_blocks);
    const int64_t b = g / a.n_kv_heads, h = g % a.n_kv_heads;
    const int64_t t0 = qb * pos_per_block;
    const int64_t n_pos = std::min(pos_per_block, a.q_len - t0);
    auto [begin, end] = key_run(b);
    if (chunks > 1) {
      begin = std::min(end, begin + c * kAttentionDecodeChunk);
      end = std::min(end, begin + kAttentionDecodeChunk);
    } else if (a.causal) {
      end = std::max(begin, std::min(end, a.start_pos + t0 + n_pos));
    }
    const size_t kv = size_t(g * a.max_ctx * d);
    const size_t q0 = size_t((b * a.q_len + t0) * a.n_heads + h * group) * size_t(d);
    kernels::F32AttentionPartialArgs p;
    p.q = a.q + q0;
    p.ldq = ld;
    p.n_pos = int(n_pos);
    p.group = int(group);
    p.head_dim = int(d);
    p.k = a.k_cache + kv;
    p.v = a.v_cache + kv;
    p.key_begin = int(begin);
    p.key_end = int(end);
    p.row_end = int(a.causal ? a.start_pos + t0 + 1 : end);
    p.row_end_step = a.causal ? 1 : 0;
    p.row_begin = int(windowed ? a.start_pos + t0 - a.window + 1 : begin);
    p.row_begin_step = windowed ? 1 : 0;
    p.scale = a.scale;
    p.softcap = a.softcap;
    p.state = states == nullptr ? nullptr
                                : states + size_t((g * q_blocks + qb) * chunks + c) * state_floats;
    p.scratch = nullptr;
    p.out = nullptr;
    p.ldout = ld;
    if (tiled) {
      p.scratch = runtime::thread_scratch<runtime::kScratchAttentionTile>(tile_floats);
      if (chunks == 1) p.out = a.out + q0;  // one part: the kernel does the merge's division
      kt.partial_tiled(p);
    } else {
      kt.partial(p);
      if (chunks == 1) {
        kt.merge({int(n_pos), int(group), int(d), 1, p.state, state_floats, a.out + q0, ld});
      }
    }
  });
  if (chunks == 1) return;
  // q_blocks == 1 here: one merge per group, over its chunks in order.
  pool.parallel_for(groups, [&](int64_t g) {
    const int64_t b = g / a.n_kv_heads, h = g % a.n_kv_heads;
    const size_t q0 = size_t(b * a.q_len * a.n_heads + h * group) * size_t(d);
    kt.merge({int(a.q_len), int(group), int(d), int(chunks),
              states + size_t(g * chunks) * state_floats, state_floats, a.out + q0, ld});
  });
}

}  // namespace pyengine::ops
