// Elementwise add, GELU (tanh and erf) and SwiGLU for the avx512 level: the shared templates
// instantiated on this level's vector traits.
#include "kernels/avx512/vec_f32__avx512.h"
#include "kernels/common/f32_elementwise.h"

namespace pyengine::kernels::avx512 {

const F32ElementwiseKernels& f32_elementwise_kernels() {
  static const F32ElementwiseKernels kernels = {
      .name = "f32_elementwise__avx512",
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

}  // namespace pyengine::kernels::avx512
