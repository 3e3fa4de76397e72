// RMSNorm and LayerNorm rows for the generic level: the shared templates instantiated on this
// level's vector traits.
#include "kernels/common/f32_norm.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const F32NormKernels& f32_norm_kernels() {
  static const F32NormKernels kernels = {
      .name = "f32_norm__generic",
      .rms_norm = &f32_rms_norm<VecF32>,
      .layer_norm = &f32_layer_norm<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::generic
