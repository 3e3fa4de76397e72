#include "ops/f32_rope.h"

#include "cpu/by_level.h"
#include "ops/parallel_rows.h"

namespace pyengine::ops {

const kernels::F32RopeKernels& f32_rope_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::f32_rope_kernels, &kernels::avx2::f32_rope_kernels,
                       &kernels::avx512::f32_rope_kernels, /*amx=*/nullptr);
}

template <class Index>
void f32_rope(cpu::IsaLevel level, bool interleaved, int64_t tokens, int64_t n_heads,
              int64_t head_dim, const Index* positions, const float* cos, const float* sin,
              int64_t half, float* x) {
  if (half <= 0 || n_heads <= 0) return;
  const auto& kt = f32_rope_kernels(level);
  const auto fn = interleaved ? kt.interleaved : kt.rotate_half;
  const int64_t token_elems = n_heads * head_dim;
  parallel_rows(tokens, 2 * n_heads * half, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t row = int64_t(positions[t]) * half;
      fn(size_t(n_heads), size_t(head_dim), size_t(half), cos + row, sin + row,
         x + t * token_elems);
    }
  });
}

template void f32_rope<int32_t>(cpu::IsaLevel, bool, int64_t, int64_t, int64_t, const int32_t*,
                                const float*, const float*, int64_t, float*);
template void f32_rope<int64_t>(cpu::IsaLevel, bool, int64_t, int64_t, int64_t, const int64_t*,
                                const float*, const float*, int64_t, float*);

}  // namespace pyengine::ops
