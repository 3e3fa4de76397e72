// bf16-weight kernels for the generic level: the shared few-row template on this level's vector
// traits. Many rows also go through it, in groups (this level has no matrix engine).
#include "kernels/common/bf16_gemv_panel.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const Bf16GemmKernels& bf16_gemm_kernels() {
  static const Bf16GemmKernels kernels = {
      "bf16_gemv__generic",
      /*gemv_max_m=*/4,
      &bf16_gemv_panel<VecF32, 4>,
      /*tiles=*/nullptr,
  };
  return kernels;
}

}  // namespace pyengine::kernels::generic
