// fp32 attention kernels for the avx2 level: the shared templates instantiated on this level's
// vector traits, plus the level's key block.
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/f32_attention.h"

namespace pyengine::kernels::avx2 {

const F32AttentionKernels& f32_attention_kernels() {
  static const F32AttentionKernels kernels =
      f32_attention_table<VecF32, /*KB=*/64>("f32_attention__avx2");
  return kernels;
}

}  // namespace pyengine::kernels::avx2
