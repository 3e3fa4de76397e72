// bf16-weight kernels for the amx level: the AMX tile unit for many rows (TDPBF16PS: a 16x32
// bf16 tile times a 32x16 one into 16x16 fp32, per instruction), and the avx512 few-row kernel.
// A 32x32 block of C lives in four accumulator tiles for all of K; the other four tiles hold
// two 16-row slices of A and two 16-column slices of the weight panel.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/bf16_gemm_kernels.h"

namespace pyengine::kernels::amx {
namespace {

constexpr int kTileRows = 32;
constexpr int kLineBytes = 2 * kBf16PanelWidth * 2;  // one pair-row of a panel

// The LDTILECFG operand: palette 1, eight tiles of 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// A constant in memory: GCC's _tile_loadconfig tells the compiler it reads only 8 bytes, so
// a configuration built on the stack could lose its stores.
constexpr TileConfig make_config() {
  TileConfig cfg{};
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  return cfg;
}
constinit const TileConfig kConfig = make_config();

void begin_thread() { _tile_loadconfig(&kConfig); }
void end_thread() { _tile_release(); }

// Rows [0, rows) of A to bf16 in tile order: for each K block of 32, the block's 32 rows of 32
// values (2 KB, two 16-row tiles) lie contiguously, so the kernel streams A in one sequence.
// Columns past k and rows past `rows` are zero.
void convert_a(int rows, int k, const float* a, size_t lda, uint16_t* dst, int kp) {
  const int steps = kp / kBf16KBlock;
  for (int r = 0; r < kTileRows; ++r) {
    uint16_t* out = dst + r * kBf16KBlock;
    for (int s = 0; s < steps; ++s) {
      const int k0 = s * kBf16KBlock;
      __m512i v = _mm512_setzero_si512();
      if (r < rows && k0 < k) {
        const float* src = a + r * lda;
        const int left = k - k0;
        const __mmask16 lo = static_cast<__mmask16>(left >= 16 ? 0xFFFF : (1u << left) - 1u);
        const __mmask16 hi = static_cast<__mmask16>(left >= 32   ? 0xFFFF
                                                    : left <= 16 ? 0
                                                                 : (1u << (left - 16)) - 1u);
        const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + k0 + 16),
                                               _mm512_maskz_loadu_ps(lo, src + k0));
        v = reinterpret_cast<const __m512i&>(h);
      }
      _mm512_store_si512(out + size_t(s) * kTileRows * kBf16KBlock, v);
    }
  }
}

// C[0:m, 0:n] = acc (+ bias + residual), acc row-major [m][32] in `tile_out`.
void store_block(const float* tile_out, int m, int n, float* c, size_t ldc,
                 const GemmEpilogue* ep) {
  const __mmask16 m0 = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1u);
  const __mmask16 m1 = static_cast<__mmask16>(n <= 16   ? 0
                                              : n >= 32 ? 0xFFFF
                                                        : (1u << (n - 16)) - 1u);
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  if (ep != nullptr && ep->bias != nullptr) {
    bias0 = _mm512_maskz_loadu_ps(m0, ep->bias);
    bias1 = _mm512_maskz_loadu_ps(m1, ep->bias + 16);
  }
  for (int i = 0; i < m; ++i) {
    __m512 r0 = _mm512_add_ps(_mm512_load_ps(tile_out + 32 * i), bias0);
    __m512 r1 = _mm512_add_ps(_mm512_load_ps(tile_out + 32 * i + 16), bias1);
    if (ep != nullptr && ep->residual != nullptr) {
      const float* res = ep->residual + i * ep->ldr;
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, res));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, res + 16));
    }
    _mm512_mask_storeu_ps(c + i * ldc, m0, r0);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, r1);
  }
}

// Fetches the K block `ahead` steps on (its 2 KB of A and 2 KB of the panel) into L1 while the
// current one computes: tile loads themselves wait on L2 otherwise.
inline void prefetch_step(const char* a_step, const char* b_step) {
  constexpr int kAhead = 2;
  constexpr int kStepBytes = 2048;
  for (int l = 0; l < kStepBytes / 64; ++l) {
    _mm_prefetch(a_step + kAhead * kStepBytes + 64 * l, _MM_HINT_T0);
    _mm_prefetch(b_step + kAhead * kStepBytes + 64 * l, _MM_HINT_T0);
  }
}

// Accumulates A rows [0, 16 * kRowTiles) times the panel over all K steps into tiles 0, 1 (rows
// 0-15) and 2, 3 (rows 16-31), then stores them to out [32][32].
template <int kRowTiles>
void accumulate(int steps, const char* a_step, const char* b_step, float* out) {
  static_assert(kRowTiles == 1 || kRowTiles == 2, "a block is one or two 16-row tiles");
  constexpr int kOutStrideBytes = kBf16PanelWidth * 4;
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (kRowTiles == 2) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int s = 0; s < steps; ++s, a_step += 2048, b_step += 2048) {
    prefetch_step(a_step, b_step);
    _tile_loadd(4, a_step, 64);
    _tile_loadd(6, b_step, kLineBytes);
    _tile_loadd(7, b_step + 64, kLineBytes);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if constexpr (kRowTiles == 2) {
      _tile_loadd(5, a_step + 1024, 64);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, out, kOutStrideBytes);
  _tile_stored(1, out + 16, kOutStrideBytes);
  if constexpr (kRowTiles == 2) {
    _tile_stored(2, out + 16 * kBf16PanelWidth, kOutStrideBytes);
    _tile_stored(3, out + 16 * kBf16PanelWidth + 16, kOutStrideBytes);
  }
}

void block(int m, int n, int kp, const uint16_t* a, const uint16_t* panel, float* c, size_t ldc,
           const GemmEpilogue* ep) {
  alignas(64) float out[kTileRows * kBf16PanelWidth];
  const char* a_step = reinterpret_cast<const char*>(a);
  const char* b_step = reinterpret_cast<const char*>(panel);
  const int steps = kp / kBf16KBlock;
  if (m > 16) {
    accumulate<2>(steps, a_step, b_step, out);
  } else {  // half the tile work for a short last block (or a short call)
    accumulate<1>(steps, a_step, b_step, out);
  }
  store_block(out, m, n, c, ldc, ep);
}

double peak_loop(long iters) {
  begin_thread();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_zero(4);
  _tile_zero(5);
  _tile_zero(6);
  _tile_zero(7);
  for (long i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float sink[16 * 16];
  _tile_stored(0, sink, 64);  // keeps the loop observable
  end_thread();
  return double(iters) * 4 * 2 * 16 * 16 * 32 + sink[0];
}

const Bf16TileKernels kTiles = {
    .tile_rows = kTileRows,
    .begin_thread = &begin_thread,
    .end_thread = &end_thread,
    .convert_a = &convert_a,
    .block = &block,
    .peak_loop = &peak_loop,
};

}  // namespace

const Bf16GemmKernels& bf16_gemm_kernels() {
  // Few rows and the fallbacks are the avx512 level's; many rows run on the tiles.
  const Bf16GemmKernels& vec = avx512::bf16_gemm_kernels();
  static const Bf16GemmKernels kernels = {
      .name = "bf16_gemm_32x32__amx",
      .gemv_max_m = vec.gemv_max_m,
      .gemv_panel = vec.gemv_panel,
      .widen_min_m = vec.widen_min_m,
      .widen = vec.widen,
      .widened_kernels = vec.widened_kernels,
      .tiles = &kTiles,
  };
  return kernels;
}

}  // namespace pyengine::kernels::amx
