#include "ops/f32_softmax.h"

#include "cpu/by_level.h"
#include "ops/parallel_rows.h"

namespace pyengine::ops {

const kernels::F32SoftmaxKernels& f32_softmax_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::f32_softmax_kernels,
                       &kernels::avx2::f32_softmax_kernels, &kernels::avx512::f32_softmax_kernels,
                       /*amx=*/nullptr);
}

void f32_softmax(cpu::IsaLevel level, int64_t rows, int64_t n, const float* x, float* y) {
  if (n <= 0) return;
  const auto& kt = f32_softmax_kernels(level);
  parallel_rows(rows, n, [&](int64_t r0, int64_t r1) {
    kt.softmax(size_t(r1 - r0), size_t(n), x + r0 * n, y + r0 * n);
  });
}

}  // namespace pyengine::ops
