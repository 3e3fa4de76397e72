// Elementwise add, GELU (tanh and erf) and SwiGLU for the generic level: the shared templates
// instantiated on this level's vector traits.
#include "kernels/common/f32_elementwise.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const F32ElementwiseKernels& f32_elementwise_kernels() {
  static const F32ElementwiseKernels kernels = {
      .name = "f32_elementwise__generic",
      .add = &f32_add<VecF32>,
      .gelu_tanh = &f32_gelu_tanh<VecF32>,
      .gelu_erf = &f32_gelu_erf<VecF32>,
      .swiglu = &f32_swiglu<VecF32>,
      .geglu = &f32_geglu<VecF32>,
      .scale = &f32_scale<VecF32>,
      .softcap = &f32_softcap<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::generic
