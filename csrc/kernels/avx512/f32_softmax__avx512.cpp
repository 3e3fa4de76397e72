// Softmax rows for the avx512 level: the shared templates instantiated on this level's vector
// traits.
#include "kernels/avx512/vec_f32__avx512.h"
#include "kernels/common/f32_softmax.h"

namespace pyengine::kernels::avx512 {

const F32SoftmaxKernels& f32_softmax_kernels() {
  static const F32SoftmaxKernels kernels = {
      .name = "f32_softmax__avx512",
      .softmax = &f32_softmax<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::avx512
