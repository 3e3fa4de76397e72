// fp32 GEMM 6x16 micro-tile and few-row GEMV for the avx2 level: the shared templates
// instantiated on this level's vector traits, plus the level's cache-blocking data.
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/f32_gemm_tile.h"

namespace pyengine::kernels::avx2 {

const F32GemmKernels& f32_gemm_kernels() {
  static const F32GemmKernels kernels = {
      "f32_gemm_6x16__avx2",
      /*mr=*/6,
      /*nr=*/16,
      /*kc=*/512,
      /*mc=*/144,
      /*gemv_max_m=*/4,
      &f32_gemm_tile<VecF32, 6, 2>,
      &f32_gemv_panel<VecF32, 4, 2>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::avx2
