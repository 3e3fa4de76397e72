// How the attention drivers (dense cache: f32_attention.cpp, paged: f32_paged_attention.cpp)
// cut a sequence's query positions into blocks, and which partial kernel takes a block. Chosen by
// the shapes alone, so results never depend on the thread count (or, in the paged driver, on
// the other sequences of a batch).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/f32_attention_kernels.h"

namespace pyengine::ops {

// Query rows (positions x query heads of one KV group) per task: enough rows to reuse each block
// of K and V many times from cache, few enough for causal prefill to give tasks of similar size.
constexpr int64_t kQueryRowsPerTask = 32;

// Above this head dim the row kernel is used even for many rows: it needs no scratch, and the
// tiled kernel's per-thread scratch (about 2 * rows * head_dim floats) stays small.
constexpr int64_t kTiledMaxHeadDim = 1024;

// Positions per query block for the tiled kernel, whose rows (positions x group) lie along
// vector lanes of `lanes` floats: from kQueryRowsPerTask rows up to twice that, the count that
// leaves the smallest share of padding lanes (the smallest count among equals). E.g. group 3 on
// 16 lanes: 16 positions, 48 rows in 3 vectors, rather than 10 positions in 30 of 32 lanes.
inline int64_t tiled_positions(int64_t group, int lanes) {
  const auto fill = [&](int64_t n) {
    const int64_t rows = n * group;
    return double(rows) / double((rows + lanes - 1) / lanes * lanes);
  };
  int64_t best = std::max<int64_t>(1, kQueryRowsPerTask / group);
  for (int64_t n = best + 1; n * group <= 2 * kQueryRowsPerTask; ++n) {
    if (fill(n) > fill(best)) best = n;
  }
  return best;
}

struct QueryBlocking {
  bool tiled;             // partial_tiled takes the blocks (many rows), else partial
  int64_t pos_per_block;  // query positions per block
};

// The blocking of q_len query positions of `group` heads per KV head, head dim d.
inline QueryBlocking query_blocking(const kernels::F32AttentionKernels& kt, int64_t group,
                                    int64_t d, int64_t q_len) {
  const int64_t row_positions = std::max<int64_t>(1, kQueryRowsPerTask / group);
  const bool tiled =
      std::min(row_positions, q_len) * group >= kt.tiled_min_rows && d <= kTiledMaxHeadDim;
  return {tiled, tiled ? tiled_positions(group, kt.tiled_lanes) : row_positions};
}

}  // namespace pyengine::ops
