// Rotary position embedding (rotate-half and interleaved) for the generic level: the shared
// templates instantiated on this level's vector traits.
#include "kernels/common/f32_rope.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const F32RopeKernels& f32_rope_kernels() {
  static const F32RopeKernels kernels = {
      .name = "f32_rope__generic",
      .rotate_half = &f32_rope_rotate_half<VecF32>,
      .interleaved = &f32_rope_interleaved<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::generic
