// y = x @ W^T + bias (+ residual) with W stored as bf16: the fixed weight is rounded and packed
// once, at construction; x, y, bias and residual are fp32.
#pragma once
#include <cstdint>

#include "ops/bf16_gemm.h"
#include "runtime/aligned_buffer.h"

namespace pyengine::ops {

class Bf16Linear {
 public:
  // Same arguments and conventions as F32Linear.
  Bf16Linear(const float* weight, int64_t stride_out, int64_t stride_in, int64_t out_features,
             int64_t in_features, const float* bias, cpu::IsaLevel level);

  void forward(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
               const float* residual, size_t ldr) const;

  int64_t out_features() const { return out_features_; }
  int64_t in_features() const { return in_features_; }
  bool has_bias() const { return bias_.size() != 0; }
  cpu::IsaLevel isa_level() const { return level_; }
  const Bf16GemmKernels& kernels() const { return kernels_; }
  size_t packed_bytes() const { return packed_elems_ * sizeof(uint16_t); }
  // The kernels a call with `rows` rows runs; the tile path rounds x to bf16 as well.
  Bf16Path path(int64_t rows) const { return bf16_gemm_path(kernels_, rows); }
  bool rounds_input(int64_t rows) const { return path(rows) == Bf16Path::kTiles; }

 private:
  const uint16_t* packed() const { return reinterpret_cast<const uint16_t*>(packed_.data()); }

  cpu::IsaLevel level_;
  const Bf16GemmKernels& kernels_;
  int64_t out_features_, in_features_;
  size_t packed_elems_;
  runtime::AlignedBuffer packed_;  // bf16 panels (two per float slot)
  runtime::AlignedBuffer bias_;    // [out] or empty
};

}  // namespace pyengine::ops
