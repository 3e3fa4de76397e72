// fp32 attention kernels for the avx512 level: the shared templates instantiated on this level's
// vector traits, plus the level's key block and tile shape.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), a self-initialized variable that
// -Wmaybe-uninitialized reports once inlined this deep (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/avx512/vec_f32__avx512.h"
#include "kernels/common/f32_attention.h"

namespace pyengine::kernels::avx512 {

// The tiled kernel's micro-tiles: 3 vectors of query rows x 8 keys for the scores, x 8 head
// dims for P V (24 accumulators each).
struct F32AttentionTileShape {
  static constexpr int kMrv = 3;
  static constexpr int kQkNr = 8;
  static constexpr int kPvNr = 8;
  static constexpr int kKeyBlock = 48;
};

const F32AttentionKernels& f32_attention_kernels() {
  static const F32AttentionKernels kernels =
      f32_attention_table<VecF32, /*KB=*/64, F32AttentionTileShape>("f32_attention__avx512",
                                                                    /*tiled_min_rows=*/8);
  return kernels;
}

}  // namespace pyengine::kernels::avx512
