// fp32 GEMM 4x8 micro-tile and few-row GEMV for the generic level: the shared templates
// instantiated on this level's vector traits, plus the level's cache-blocking data.
#include "kernels/common/f32_gemm_tile.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const F32GemmKernels& f32_gemm_kernels() {
  static const F32GemmKernels kernels = {
      "f32_gemm_4x8__generic",
      /*mr=*/4,
      /*nr=*/8,
      /*kc=*/256,
      /*mc=*/64,
      /*gemv_max_m=*/4,
      &f32_gemm_tile<VecF32, 4, 2>,
      &f32_gemv_panel<VecF32, 4, 2>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::generic
