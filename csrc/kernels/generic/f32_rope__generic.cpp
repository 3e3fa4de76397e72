// Rotary position embedding (rotate-half and interleaved) for the generic level: the shared
// templates instantiated on this level's vector traits.
#include "kernels/common/f32_rope.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const F32RopeKernels& f32_rope_kernels() {
  static const F32RopeKernels kernels = {
      "f32_rope__generic",
      &f32_rope_rotate_half<VecF32>,
      &f32_rope_interleaved<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::generic
