#include "ops/f32_paged_attention.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/f32_attention_blocking.h"
#include "ops/int_math.h"
#include "runtime/thread_scratch.h"

namespace pyengine::ops {

namespace {

// Below this many floats a cache write is one task: a pool dispatch would cost more.
constexpr int64_t kSerialCopyFloats = 16 * 1024;

// One query block of one sequence and KV head: its rows' partial states over `parts` pool blocks
// (the blocks first_block, ... holding keys key_begin .. key_end - 1), at states + first_state,
// state_floats apart.
struct QueryGroup {
  int64_t seq, head, t0, n_pos, key_end;
  int64_t first_block, parts, first_task;
  size_t first_state, state_floats;
  bool tiled;
};

}  // namespace

void f32_paged_kv_write(const F32PagedKvWriteArgs& a, runtime::ThreadPool& pool) {
  const size_t row_bytes = size_t(a.head_dim) * sizeof(float);
  auto copy_token = [&](int64_t t) {
    const int64_t slot = a.slots[t];
    const int64_t block = slot / a.block_size, offset = slot % a.block_size;
    for (int64_t h = 0; h < a.n_kv_heads; ++h) {
      const size_t src = size_t((t * a.n_kv_heads + h) * a.head_dim);
      const size_t dst = size_t(((block * a.n_kv_heads + h) * a.block_size + offset) * a.head_dim);
      std::memcpy(a.k_pool + dst, a.k + src, row_bytes);
      std::memcpy(a.v_pool + dst, a.v + src, row_bytes);
    }
  };
  if (a.tokens * a.n_kv_heads * a.head_dim <= kSerialCopyFloats) {
    for (int64_t t = 0; t < a.tokens; ++t) copy_token(t);
  } else {
    pool.parallel_for(a.tokens, copy_token);
  }
}

// Tasks are (query group, pool block): each writes one partial state; a second pass merges the
// states of each group in block order. The task list is rebuilt per call in vectors owned by the
// calling thread (cleared, not freed: no allocation once they have grown).
void f32_paged_attention(const kernels::F32AttentionKernels& kt, const F32PagedAttentionArgs& a,
                         runtime::ThreadPool& pool) {
  if (a.n_seqs == 0 || a.n_heads == 0) return;
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t d = a.head_dim, bs = a.block_size;
  const size_t ld = size_t(a.n_heads * d);  // q and out: one token
  // The calling thread's lists, named by references: a thread_local named inside the pool's
  // tasks would be each worker's own (empty) instance.
  thread_local std::vector<QueryGroup> own_groups;
  thread_local std::vector<int64_t> own_task_group;
  std::vector<QueryGroup>& groups = own_groups;
  std::vector<int64_t>& task_group = own_task_group;  // task -> its query group
  groups.clear();
  task_group.clear();
  size_t states_total = 0, tile_floats = 0;
  for (int64_t s = 0; s < a.n_seqs; ++s) {
    const int64_t q_len = a.q_start[s + 1] - a.q_start[s];
    if (q_len <= 0) continue;
    const auto [tiled, pos_per_block] = query_blocking(kt, group, d, q_len);
    const int block_rows = int(std::min(pos_per_block, q_len) * group);
    const size_t state_floats = kernels::f32_attention_state_floats(block_rows, int(d));
    if (tiled) tile_floats = std::max(tile_floats, kt.tiled_scratch_floats(block_rows, int(d)));
    for (int64_t h = 0; h < a.n_kv_heads; ++h) {
      for (int64_t t0 = 0; t0 < q_len; t0 += pos_per_block) {
        const int64_t n_pos = std::min(pos_per_block, q_len - t0);
        const int64_t key_end = a.first_pos[s] + t0 + n_pos;  // the block's last row sees < this
        // the block's first row sees keys from this one on (a window's lower edge)
        const int64_t key_begin =
            a.window > 0 ? std::max<int64_t>(0, a.first_pos[s] + t0 - a.window + 1) : 0;
        const int64_t first_block = key_begin / bs;
        const int64_t parts = ceil_div(key_end, bs) - first_block;
        groups.push_back({s, h, t0, n_pos, key_end, first_block, parts, int64_t(task_group.size()),
                          states_total, state_floats, tiled});
        task_group.insert(task_group.end(), size_t(parts), int64_t(groups.size() - 1));
        states_total += size_t(parts) * state_floats;
      }
    }
  }
  float* states = runtime::thread_scratch<runtime::kScratchAttentionStates>(states_total);

  // Longest tasks first would need sorting; tasks are one pool block each, so they are of
  // similar size already.
  pool.parallel_for(int64_t(task_group.size()), [&](int64_t task) {
    const QueryGroup& g = groups[size_t(task_group[size_t(task)])];
    const int64_t part = task - g.first_task;
    const int64_t c = g.first_block + part;  // which pool block of the sequence
    const int64_t block = a.block_table[g.seq * a.table_stride + c];
    const size_t kv = size_t((block * a.n_kv_heads + g.head) * bs * d);
    kernels::F32AttentionPartialArgs p;
    p.q = a.q + (size_t(a.q_start[g.seq] + g.t0) * size_t(a.n_heads) + size_t(g.head * group)) *
                    size_t(d);
    p.ldq = ld;
    p.n_pos = int(g.n_pos);
    p.group = int(group);
    p.head_dim = int(d);
    p.k = a.k_pool + kv;
    p.v = a.v_pool + kv;
    p.key_begin = 0;
    p.key_end = int(std::min(bs, g.key_end - c * bs));
    // Row t of the block sits at position first_pos + t0 + t: sees keys < that + 1, which are
    // block-relative offsets < first_pos + t0 + t + 1 - c * block_size (<= 0: none here).
    p.row_end = int(a.first_pos[g.seq] + g.t0 + 1 - c * bs);
    p.row_end_step = 1;
    // and keys >= its position - window + 1 (block-relative)
    p.row_begin = a.window > 0 ? int(a.first_pos[g.seq] + g.t0 - a.window + 1 - c * bs) : 0;
    p.row_begin_step = a.window > 0 ? 1 : 0;
    p.scale = a.scale;
    p.softcap = a.softcap;
    p.state = states + g.first_state + size_t(part) * g.state_floats;
    p.out = nullptr;
    p.ldout = ld;
    p.scratch = nullptr;
    if (g.tiled) {
      p.scratch = runtime::thread_scratch<runtime::kScratchAttentionTile>(tile_floats);
      kt.partial_tiled(p);
    } else {
      kt.partial(p);
    }
  });
  pool.parallel_for(int64_t(groups.size()), [&](int64_t i) {
    const QueryGroup& g = groups[size_t(i)];
    const size_t q0 =
        (size_t(a.q_start[g.seq] + g.t0) * size_t(a.n_heads) + size_t(g.head * group)) * size_t(d);
    kt.merge({int(g.n_pos), int(group), int(d), int(g.parts), states + g.first_state,
              g.state_floats, a.out + q0, ld});
  });
}

}  // namespace pyengine::ops
