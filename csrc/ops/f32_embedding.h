// Embedding lookup: a row gather, the same on every ISA level (memcpy), tokens split across the
// thread pool when the job is large enough.
#pragma once
#include <cstdint>

namespace pyengine::ops {

// The first i in [0, n) with ids[i] outside [0, limit), or -1 when all are inside.
template <class Index>
int64_t first_index_out_of_range(const Index* ids, int64_t n, int64_t limit) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || int64_t(ids[i]) >= limit) return i;
  }
  return -1;
}

// out[i, :] = table[ids[i], :] for i < n_ids; table [vocab, dim], out [n_ids, dim], both
// C-contiguous and not overlapping. The caller has checked 0 <= ids[i] < vocab.
// Index: int32_t or int64_t.
template <class Index>
void f32_embedding(int64_t n_ids, const Index* ids, const float* table, int64_t dim, float* out);

}  // namespace pyengine::ops
