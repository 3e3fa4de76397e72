// fp32 attention kernels for the avx2 level: the shared templates instantiated on this level's
// vector traits, plus the level's key block and tile shape.
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/f32_attention.h"

namespace pyengine::kernels::avx2 {

// The tiled kernel's micro-tiles: 2 vectors of query rows x 6 keys for the scores, x 6 head
// dims for P V (12 accumulators each).
struct F32AttentionTileShape {
  static constexpr int kMrv = 2;
  static constexpr int kQkNr = 6;
  static constexpr int kPvNr = 6;
  static constexpr int kKeyBlock = 48;
};

const F32AttentionKernels& f32_attention_kernels() {
  static const F32AttentionKernels kernels =
      f32_attention_table<VecF32, /*KB=*/64, F32AttentionTileShape>("f32_attention__avx2",
                                                                    /*tiled_min_rows=*/8);
  return kernels;
}

}  // namespace pyengine::kernels::avx2
