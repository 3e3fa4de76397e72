// bf16-weight kernels for the avx2 level: the shared few-row template on this level's vector
// traits. Many rows also go through it, in groups (this level has no matrix engine).
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/bf16_gemv_panel.h"

namespace pyengine::kernels::avx2 {

const Bf16GemmKernels& bf16_gemm_kernels() {
  static const Bf16GemmKernels kernels = {
      "bf16_gemv__avx2",
      /*gemv_max_m=*/4,
      &bf16_gemv_panel<VecF32, 4>,
      /*tiles=*/nullptr,
  };
  return kernels;
}

}  // namespace pyengine::kernels::avx2
