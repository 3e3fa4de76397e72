// Portable driver of rotary position embedding (kernels/f32_rope_kernels.h): the ISA level's
// table, each token's cos/sin rows looked up by position, tokens split across the thread pool.
#pragma once
#include <cstdint>

#include "cpu/isa_level.h"
#include "kernels/f32_rope_kernels.h"

namespace pyengine::ops {

const kernels::F32RopeKernels& f32_rope_kernels(cpu::IsaLevel level);

// Rotates x [tokens, n_heads, head_dim] (C-contiguous) in place: token t by the angles of
// positions[t], i.e. the rows cos[positions[t], 0:half] and sin[...] of tables [max_pos, half].
// The caller has checked 0 <= positions[t] < max_pos and 2 * half <= head_dim.
// Index: int32_t or int64_t.
template <class Index>
void f32_rope(cpu::IsaLevel level, bool interleaved, int64_t tokens, int64_t n_heads,
              int64_t head_dim, const Index* positions, const float* cos, const float* sin,
              int64_t half, float* x);

}  // namespace pyengine::ops
