// The softmax kernel every ISA level implements, and the per-level tables. Portable header: no
// intrinsics here.
#pragma once
#include <cstddef>

namespace pyengine::kernels {

// y[r, :] = exp(x[r, :] - max(x[r, :])) / sum(exp(x[r, :] - max(x[r, :]))) for `rows`
// contiguous rows of n >= 1 floats. y may equal x (in place); no other overlap. Writes exactly
// y[0 : rows * n]. Each row is reduced in a fixed order, whatever the caller's row split.
struct F32SoftmaxKernels {
  const char* name;  // e.g. "f32_softmax__avx512"
  void (*softmax)(size_t rows, size_t n, const float* x, float* y);
};

namespace generic {
const F32SoftmaxKernels& f32_softmax_kernels();
}  // namespace generic
namespace avx2 {
const F32SoftmaxKernels& f32_softmax_kernels();
}  // namespace avx2
namespace avx512 {
const F32SoftmaxKernels& f32_softmax_kernels();
}  // namespace avx512

}  // namespace pyengine::kernels
