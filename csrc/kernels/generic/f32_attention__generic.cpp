// fp32 attention kernels for the generic level: the shared templates instantiated on this level's
// vector traits, plus the level's key block.
#include "kernels/common/f32_attention.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const F32AttentionKernels& f32_attention_kernels() {
  static const F32AttentionKernels kernels =
      f32_attention_table<VecF32, /*KB=*/64>("f32_attention__generic");
  return kernels;
}

}  // namespace pyengine::kernels::generic
