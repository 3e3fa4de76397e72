#include "ops/f32_linear.h"

#include <algorithm>

namespace pyengine::ops {

F32Linear::F32Linear(const float* weight, int64_t stride_out, int64_t stride_in,
                     int64_t out_features, int64_t in_features, const float* bias,
                     cpu::IsaLevel level)
    : level_(level),
      kernels_(f32_gemm_kernels(level)),
      out_features_(out_features),
      in_features_(in_features),
      packed_(f32_packed_b_size(out_features, in_features, kernels_.nr)) {
  f32_pack_b(weight, stride_out, stride_in, out_features, in_features, kernels_.nr, packed_.data(),
             runtime::ThreadPool::instance());
  if (bias != nullptr) {
    bias_ = runtime::AlignedBuffer(size_t(out_features));
    std::copy(bias, bias + out_features, bias_.data());
  }
}

void F32Linear::forward(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
                        const float* residual, size_t ldr) const {
  F32GemmArgs g;
  g.m = rows;
  g.n = out_features_;
  g.k = in_features_;
  g.a = x;
  g.lda = ldx;
  g.b_packed = packed_.data();
  g.c = y;
  g.ldc = ldy;
  g.bias = has_bias() ? bias_.data() : nullptr;
  g.residual = residual;
  g.ldr = ldr;
  f32_gemm_packed(kernels_, g, runtime::ThreadPool::instance());
}

void f32_matmul(cpu::IsaLevel level, int64_t m, int64_t n, int64_t k, const float* a, size_t lda,
                const float* b, size_t ldb, float* c, size_t ldc) {
  const F32GemmKernels& kt = f32_gemm_kernels(level);
  runtime::ThreadPool& pool = runtime::ThreadPool::instance();
  runtime::AlignedBuffer packed(f32_packed_b_size(n, k, kt.nr));
  f32_pack_b(b, /*stride_n=*/1, /*stride_k=*/int64_t(ldb), n, k, kt.nr, packed.data(), pool);
  F32GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.b_packed = packed.data();
  g.c = c;
  g.ldc = ldc;
  f32_gemm_packed(kt, g, pool);
}

}  // namespace pyengine::ops
