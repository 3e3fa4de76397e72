// The operands of one product, whatever B's packed format:
//   C[M, N] = A[M, K] @ B + bias[N] + residual[M, N]
// A, C and residual row-major with the given row strides; B in the format's packed layout (see
// its pack function; null where a panel source supplies B instead). bias and residual may be
// nullptr. C may not overlap A or B; it may equal residual (an in-place residual add).
#pragma once
#include <cstddef>
#include <cstdint>

namespace pyengine::ops {

template <class PackedB>
struct GemmArgs {
  int64_t m, n, k;
  const float* a;
  size_t lda;
  const PackedB* b_packed;
  float* c;
  size_t ldc;
  const float* bias = nullptr;
  const float* residual = nullptr;
  size_t ldr = 0;

  // The same product with B held in another packing.
  template <class Other>
  GemmArgs<Other> with_b(const Other* b) const {
    return {m, n, k, a, lda, b, c, ldc, bias, residual, ldr};
  }
};

}  // namespace pyengine::ops
