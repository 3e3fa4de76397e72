// RMSNorm and LayerNorm rows for the avx2 level: the shared templates instantiated on this level's
// vector traits.
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/f32_norm.h"

namespace pyengine::kernels::avx2 {

const F32NormKernels& f32_norm_kernels() {
  static const F32NormKernels kernels = {
      .name = "f32_norm__avx2",
      .rms_norm = &f32_rms_norm<VecF32>,
      .layer_norm = &f32_layer_norm<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::avx2
