// The row-normalization kernels every ISA level implements (RMSNorm, LayerNorm), and the
// per-level tables. Portable header: no intrinsics here.
#pragma once
#include <cstddef>

namespace pyengine::kernels {

// Both normalize `rows` contiguous rows of n floats each, x [rows, n] -> y [rows, n], n >= 1.
// y may equal x (in place); no other overlap. Reads x, weight [n] (and bias [n]); writes exactly
// y[0 : rows * n]. Each row is reduced in a fixed order, whatever the caller's row split.
//   rms_norm:   y = x * (1 / sqrt(mean(x^2) + eps)) * weight                   (T5, Llama)
//   layer_norm: y = (x - mean(x)) * (1 / sqrt(var(x) + eps)) * weight + bias   (BERT, GPT-2)
//               var is the biased variance (divides by n), computed in two passes; bias may be
//               nullptr (no bias).
struct F32NormKernels {
  const char* name;  // e.g. "f32_norm__avx512"
  void (*rms_norm)(size_t rows, size_t n, const float* x, const float* weight, float eps, float* y);
  void (*layer_norm)(size_t rows, size_t n, const float* x, const float* weight, const float* bias,
                     float eps, float* y);
};

namespace generic {
const F32NormKernels& f32_norm_kernels();
}  // namespace generic
namespace avx2 {
const F32NormKernels& f32_norm_kernels();
}  // namespace avx2
namespace avx512 {
const F32NormKernels& f32_norm_kernels();
}  // namespace avx512

}  // namespace pyengine::kernels
