// Rotary position embedding (rotate-half and interleaved) for the avx512 level: the shared
// templates instantiated on this level's vector traits.
#include "kernels/avx512/vec_f32__avx512.h"
#include "kernels/common/f32_rope.h"

namespace pyengine::kernels::avx512 {

const F32RopeKernels& f32_rope_kernels() {
  static const F32RopeKernels kernels = {
      .name = "f32_rope__avx512",
      .rotate_half = &f32_rope_rotate_half<VecF32>,
      .interleaved = &f32_rope_interleaved<VecF32>,
  };
  return kernels;
}

}  // namespace pyengine::kernels::avx512
