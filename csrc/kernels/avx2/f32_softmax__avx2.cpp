// Softmax rows for the avx2 level: the shared templates instantiated on this level's vector
// traits.
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/f32_softmax.h"

namespace pyengine::kernels::avx2 {

const F32SoftmaxKernels& f32_softmax_kernels() {
  static const F32SoftmaxKernels kernels = {
      .name = "f32_softmax__avx2",
      .softmax = &f32_softmax<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::avx2
