// bf16-weight kernels for the avx2 level: the shared few-row template on this level's vector
// traits, and the widening of bf16 panels for this level's fp32 micro-kernel (many rows: this
// level has no matrix engine).
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/bf16_panel.h"

namespace pyengine::kernels::avx2 {

const Bf16GemmKernels& bf16_gemm_kernels() {
  static const Bf16GemmKernels kernels = {
      .name = "bf16_gemm__avx2",
      .gemv_max_m = 4,
      .gemv_panel = &bf16_gemv_panel<VecF32, 4>,
      .widen_min_m = 8,
      .widen = &bf16_widen<VecF32>,
      .widened_kernels = &f32_gemm_kernels(),
      .tiles = nullptr,
  };

  return kernels;
}

}  // namespace pyengine::kernels::avx2
