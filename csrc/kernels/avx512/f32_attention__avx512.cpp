// fp32 attention kernels for the avx512 level: the shared templates instantiated on this level's
// vector traits, plus the level's key block.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), a self-initialized variable that
// -Wmaybe-uninitialized reports once inlined this deep (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/avx512/vec_f32__avx512.h"
#include "kernels/common/f32_attention.h"

namespace pyengine::kernels::avx512 {

const F32AttentionKernels& f32_attention_kernels() {
  static const F32AttentionKernels kernels =
      f32_attention_table<VecF32, /*KB=*/64>("f32_attention__avx512");
  return kernels;
}

}  // namespace pyengine::kernels::avx512
