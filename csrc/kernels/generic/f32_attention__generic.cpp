// fp32 attention kernels for the generic level: the shared templates instantiated on this level's
// vector traits, plus the level's key block and tile shape.
#include "kernels/common/f32_attention.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

// The tiled kernel's micro-tiles: 4 vectors of query rows x 3 keys for the scores, x 3 head
// dims for P V (12 accumulators each: SSE has 16 registers and no FMA).
struct F32AttentionTileShape {
  static constexpr int kMrv = 4;
  static constexpr int kQkNr = 3;
  static constexpr int kPvNr = 3;
  static constexpr int kKeyBlock = 48;
};

const F32AttentionKernels& f32_attention_kernels() {
  static const F32AttentionKernels kernels =
      f32_attention_table<VecF32, /*KB=*/64, F32AttentionTileShape>("f32_attention__generic",
                                                                    /*tiled_min_rows=*/8);
  return kernels;
}

}  // namespace pyengine::kernels::generic
