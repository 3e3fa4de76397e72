// fp32 GEMM 12x32 micro-tile and few-row GEMV for the avx512 level: the shared templates
// instantiated on this level's vector traits, plus the level's cache-blocking data.
#include "kernels/avx512/vec_f32__avx512.h"
#include "kernels/common/f32_gemm_tile.h"

namespace pyengine::kernels::avx512 {

const F32GemmKernels& f32_gemm_kernels() {
  static const F32GemmKernels kernels = {
      "f32_gemm_12x32__avx512",
      /*mr=*/12,
      /*nr=*/32,
      /*kc=*/1024,
      /*mc=*/192,
      /*gemv_max_m=*/4,
      &f32_gemm_tile<VecF32, 12, 2>,
      &f32_gemv_panel<VecF32, 4, 2>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::avx512
