#include "ops/f32_elementwise.h"

#include "cpu/by_level.h"
#include "ops/parallel_rows.h"

namespace pyengine::ops {

const kernels::F32ElementwiseKernels& f32_elementwise_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::f32_elementwise_kernels,
                       &kernels::avx2::f32_elementwise_kernels,
                       &kernels::avx512::f32_elementwise_kernels, /*amx=*/nullptr);
}

void f32_add(cpu::IsaLevel level, int64_t n, const float* a, const float* b, float* y) {
  const auto& kt = f32_elementwise_kernels(level);
  parallel_elements(
      n, [&](int64_t j0, int64_t j1) { kt.add(size_t(j1 - j0), a + j0, b + j0, y + j0); });
}

void f32_gelu(cpu::IsaLevel level, GeluApproximation approximate, int64_t n, const float* x,
              float* y) {
  const auto& kt = f32_elementwise_kernels(level);
  const auto fn = approximate == GeluApproximation::kTanh ? kt.gelu_tanh : kt.gelu_erf;
  parallel_elements(n, [&](int64_t j0, int64_t j1) { fn(size_t(j1 - j0), x + j0, y + j0); });
}

void f32_swiglu(cpu::IsaLevel level, int64_t rows, int64_t inter, const float* gate_up, float* y) {
  if (inter <= 0) return;
  const auto& kt = f32_elementwise_kernels(level);
  parallel_rows(rows, 2 * inter, [&](int64_t r0, int64_t r1) {
    kt.swiglu(size_t(r1 - r0), size_t(inter), gate_up + r0 * 2 * inter, y + r0 * inter);
  });
}

void f32_geglu(cpu::IsaLevel level, int64_t rows, int64_t inter, const float* gate_up, float* y) {
  if (inter <= 0) return;
  const auto& kt = f32_elementwise_kernels(level);
  parallel_rows(rows, 2 * inter, [&](int64_t r0, int64_t r1) {
    kt.geglu(size_t(r1 - r0), size_t(inter), gate_up + r0 * 2 * inter, y + r0 * inter);
  });
}

void f32_scale(cpu::IsaLevel level, int64_t n, float s, const float* x, float* y) {
  const auto& kt = f32_elementwise_kernels(level);
  parallel_elements(n,
                    [&](int64_t j0, int64_t j1) { kt.scale(size_t(j1 - j0), s, x + j0, y + j0); });
}

void f32_softcap(cpu::IsaLevel level, int64_t n, float cap, const float* x, float* y) {
  const auto& kt = f32_elementwise_kernels(level);
  parallel_elements(
      n, [&](int64_t j0, int64_t j1) { kt.softcap(size_t(j1 - j0), cap, x + j0, y + j0); });
}

}  // namespace pyengine::ops
