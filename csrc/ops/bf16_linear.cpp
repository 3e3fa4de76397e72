#include "ops/bf16_linear.h"

#include <algorithm>

namespace pyengine::ops {

Bf16Linear::Bf16Linear(const float* weight, int64_t stride_out, int64_t stride_in,
                       int64_t out_features, int64_t in_features, const float* bias,
                       cpu::IsaLevel level)
    : level_(level),
      kernels_(bf16_gemm_kernels(level)),
      out_features_(out_features),
      in_features_(in_features),
      packed_elems_(bf16_packed_b_size(out_features, in_features)),
      packed_((packed_elems_ + 1) / 2) {
  bf16_pack_b(weight, stride_out, stride_in, out_features, in_features,
              reinterpret_cast<uint16_t*>(packed_.data()), runtime::ThreadPool::instance());
  if (bias != nullptr) {
    bias_ = runtime::AlignedBuffer(size_t(out_features));
    std::copy(bias, bias + out_features, bias_.data());
  }
}

void Bf16Linear::forward(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
                         const float* residual, size_t ldr) const {
  Bf16GemmArgs g;
  g.m = rows;
  g.n = out_features_;
  g.k = in_features_;
  g.a = x;
  g.lda = ldx;
  g.b_packed = packed();
  g.c = y;
  g.ldc = ldy;
  g.bias = has_bias() ? bias_.data() : nullptr;
  g.residual = residual;
  g.ldr = ldr;
  bf16_gemm_packed(kernels_, g, runtime::ThreadPool::instance());
}

}  // namespace pyengine::ops
