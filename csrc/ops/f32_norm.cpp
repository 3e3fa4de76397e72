#include "ops/f32_norm.h"

#include "cpu/by_level.h"
#include "ops/parallel_rows.h"

namespace pyengine::ops {

const kernels::F32NormKernels& f32_norm_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::f32_norm_kernels, &kernels::avx2::f32_norm_kernels,
                       &kernels::avx512::f32_norm_kernels, /*amx=*/nullptr);
}

void f32_rms_norm(cpu::IsaLevel level, int64_t rows, int64_t n, const float* x, const float* weight,
                  float eps, float* y) {
  if (n <= 0) return;
  const auto& kt = f32_norm_kernels(level);
  parallel_rows(rows, n, [&](int64_t r0, int64_t r1) {
    kt.rms_norm(size_t(r1 - r0), size_t(n), x + r0 * n, weight, eps, y + r0 * n);
  });
}

void f32_layer_norm(cpu::IsaLevel level, int64_t rows, int64_t n, const float* x,
                    const float* weight, const float* bias, float eps, float* y) {
  if (n <= 0) return;
  const auto& kt = f32_norm_kernels(level);
  parallel_rows(rows, n, [&](int64_t r0, int64_t r1) {
    kt.layer_norm(size_t(r1 - r0), size_t(n), x + r0 * n, weight, bias, eps, y + r0 * n);
  });
}

}  // namespace pyengine::ops
