// Kernels for Linear layers whose fixed weights are stored as bf16 (half the bytes of fp32, so
// twice the decode speed where streaming weights is the limit). Activations and outputs stay
// fp32. Portable header: no intrinsics here.
//
// Packed weight layout, the same for every level so a weight is packed once: panels of
// kBf16PanelWidth columns; K padded with zeros to a multiple of kBf16KBlock; inside a panel, the
// pair of rows (2q, 2q + 1) is one line of kBf16PanelWidth 32-bit words, word j holding column j's
// bf16 at row 2q (low half) and 2q + 1 (high half):
//   element (k, n) at panel[n / 32][(k / 2) * 64 + (n % 32) * 2 + k % 2].
// This is the AMX "VNNI" B layout: a tile of 16 pair-rows x 16 columns is a strided 2-D load.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/f32_gemm_kernels.h"

namespace pyengine::kernels {

inline constexpr int kBf16PanelWidth = 32;
inline constexpr int kBf16KBlock = 32;

// Few rows over one packed panel and the whole of K: C[0:m, 0:n] = A[0:m, 0:k] @ B (+ epilogue).
// A is fp32, row-major (row stride lda), used as is: only the weights are rounded to bf16.
// Accepts 1 <= m <= gemv_max_m, 1 <= n <= kBf16PanelWidth; reads A[0:m, 0:k] only.
using Bf16GemvPanelFn = void (*)(int m, int n, int k, const float* a, size_t lda, const uint16_t* b,
                                 float* c, size_t ldc, const GemmEpilogue* ep);

// The matrix-engine path of levels that have one (AMX), for many rows. A is first rounded to bf16
// into blocks of tile_rows rows x kp (kp = K rounded up to kBf16KBlock), in the order the kernel
// reads them, then each block times each packed panel runs over all of K in tile registers.
struct Bf16TileKernels {
  int tile_rows;  // rows of A per block (32)
  // Bracket a thread's run of `block` calls: load the tile configuration, then release the tile
  // state, so an idle thread does not carry 8 KB of AMX state through every context switch.
  void (*begin_thread)();
  void (*end_thread)();
  // One block of A: bf16(A[r][0:k]) for r < rows in the kernel's order (tile_rows * kp values,
  // 64-byte aligned), zeros past k and for rows in [rows, tile_rows).
  void (*convert_a)(int rows, int k, const float* a, size_t lda, uint16_t* dst, int kp);
  // C[0:m, 0:n] = A_bf16[0:m, 0:kp] @ panel (+ epilogue), m <= tile_rows, n <= kBf16PanelWidth.
  void (*block)(int m, int n, int kp, const uint16_t* a, const uint16_t* panel, float* c,
                size_t ldc, const GemmEpilogue* ep);
  // Machine-limit probe: `iters` rounds of tile products on registers only (no loads); returns
  // the flops performed. Configures the calling thread's tiles itself.
  double (*peak_loop)(long iters);
};

// Widens rows [p0, p0 + kc) of columns [c0, c0 + nr) of one packed panel to fp32, row-major
// [kc][nr] at dst (the fp32 micro-kernels' panel layout). p0 even; nr a multiple of the level's
// vector width with c0 + nr <= kBf16PanelWidth. When kc is odd, row kc (padding) is written too.
using Bf16WidenFn = void (*)(const uint16_t* panel, int p0, int kc, int c0, int nr, float* dst);

struct Bf16GemmKernels {
  const char* name;  // e.g. "bf16_gemm_32x32__amx"
  int gemv_max_m;
  Bf16GemvPanelFn gemv_panel;
  // Levels without tiles: from widen_min_m rows on, products run this fp32 micro-kernel table on
  // B widened by `widen` (fewer rows: gemv_panel in groups of gemv_max_m).
  int widen_min_m;
  Bf16WidenFn widen;
  const F32GemmKernels* widened_kernels;
  const Bf16TileKernels* tiles;  // nullptr: many rows go through gemv_panel in groups
};

namespace generic {
const Bf16GemmKernels& bf16_gemm_kernels();
}
namespace avx2 {
const Bf16GemmKernels& bf16_gemm_kernels();
}
namespace avx512 {
const Bf16GemmKernels& bf16_gemm_kernels();
}
namespace amx {
const Bf16GemmKernels& bf16_gemm_kernels();
}

}  // namespace pyengine::kernels
