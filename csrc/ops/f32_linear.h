// y = x @ W^T + bias (+ residual): a fixed-weight layer whose weight is packed once, at
// construction, into the panel layout of the chosen ISA level's micro-kernel.
#pragma once
#include <cstdint>

#include "ops/f32_gemm.h"
#include "runtime/aligned_buffer.h"

namespace pyengine::ops {

class F32Linear {
 public:
  // weight element (o, i) at weight[o * stride_out + i * stride_in]: [out_features, in_features]
  // in torch.nn.Linear's convention, any strides. bias: [out_features] or nullptr.
  F32Linear(const float* weight, int64_t stride_out, int64_t stride_in, int64_t out_features,
            int64_t in_features, const float* bias, cpu::IsaLevel level);

  // y[m, :] = x[m, :] @ W^T + bias + residual[m, :] for m in [0, rows). residual may be nullptr
  // or equal to y (in-place residual add); no other overlap is allowed.
  void forward(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
               const float* residual, size_t ldr) const;

  int64_t out_features() const { return out_features_; }
  int64_t in_features() const { return in_features_; }
  bool has_bias() const { return bias_.size() != 0; }
  cpu::IsaLevel isa_level() const { return level_; }
  const F32GemmKernels& kernels() const { return kernels_; }
  size_t packed_bytes() const { return packed_.size() * sizeof(float); }

 private:
  cpu::IsaLevel level_;
  const F32GemmKernels& kernels_;
  int64_t out_features_, in_features_;
  runtime::AlignedBuffer packed_;  // [ceil(out/nr)][in][nr]
  runtime::AlignedBuffer bias_;    // [out] or empty
};

// C[M, N] = A[M, K] @ B[K, N], all row-major with the given row strides. B is packed per call.
void f32_matmul(cpu::IsaLevel level, int64_t m, int64_t n, int64_t k, const float* a, size_t lda,
                const float* b, size_t ldb, float* c, size_t ldc);

}  // namespace pyengine::ops
