// Softmax rows for the generic level: the shared templates instantiated on this level's vector
// traits.
#include "kernels/common/f32_softmax.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const F32SoftmaxKernels& f32_softmax_kernels() {
  static const F32SoftmaxKernels kernels = {
      .name = "f32_softmax__generic",
      .softmax = &f32_softmax<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::generic
