// Few-row products over bf16 weight panels, written once against vector traits V (which add
// load_bf16_pairs to the fp32 ones) and compiled once per level. Each pair-row of the panel is
// widened to fp32 in registers (exact), so only the weight rounding at packing time differs from
// an fp32 product; accumulation is fp32 FMA, as in the fp32 GEMV.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

#include "kernels/bf16_gemm_kernels.h"
#include "kernels/common/f32_gemm_tile.h"

namespace pyengine::kernels {

template <class V, int M, int NV>
static void bf16_gemv_panel_m(int n, int k, const float* a, size_t lda, const uint16_t* b, float* c,
                              size_t ldc, const GemmEpilogue* ep) {
  constexpr int W = V::kWidth;
  static_assert(NV * W == kBf16PanelWidth, "one panel is NV vectors wide");
  constexpr int kLine = 2 * kBf16PanelWidth;  // uint16 per pair-row (128 bytes, two cache lines)
  // Software prefetch into L2, 6 KB ahead: with half the bytes per FMA of fp32, the hardware
  // prefetcher alone left the stream at ~70% of the bandwidth (4 KB into L1: ~80%; this: ~90%).
  constexpr int kPrefetchLines = 48;
  // Separate even-row and odd-row accumulators: two independent FMA chains per output vector.
  typename V::Reg even_acc[M][NV], odd_acc[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) even_acc[i][v] = odd_acc[i][v] = V::zero();

  const int pairs = k / 2;
  for (int q = 0; q < pairs; ++q) {
    const uint16_t* line = b + size_t(q) * kLine;
    V::prefetch_l2(line + kPrefetchLines * kLine);
    V::prefetch_l2(line + kPrefetchLines * kLine + 32);
    typename V::Reg even[NV], odd[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) V::load_bf16_pairs(line + 2 * W * v, even[v], odd[v]);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const typename V::Reg ae = V::broadcast(a[i * lda + 2 * q]);
      const typename V::Reg ao = V::broadcast(a[i * lda + 2 * q + 1]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        even_acc[i][v] = V::fmadd(ae, even[v], even_acc[i][v]);
        odd_acc[i][v] = V::fmadd(ao, odd[v], odd_acc[i][v]);
      }
    }
  }
  if (k % 2 != 0) {  // the last row alone: its pair partner is padding (zero weights)
    const uint16_t* line = b + size_t(pairs) * kLine;
    typename V::Reg even[NV], odd[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) V::load_bf16_pairs(line + 2 * W * v, even[v], odd[v]);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const typename V::Reg ae = V::broadcast(a[i * lda + k - 1]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) even_acc[i][v] = V::fmadd(ae, even[v], even_acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) even_acc[i][v] = V::add(even_acc[i][v], odd_acc[i][v]);
  f32_store_tile<V, M, NV>(even_acc, n, c, ldc, false, ep);
}

template <class V, int NV, size_t... Ms>
static void bf16_gemv_panel_dispatch(std::index_sequence<Ms...>, int m, int n, int k,
                                     const float* a, size_t lda, const uint16_t* b, float* c,
                                     size_t ldc, const GemmEpilogue* ep) {
  using Fn = void (*)(int, int, const float*, size_t, const uint16_t*, float*, size_t,
                      const GemmEpilogue*);
  static constexpr Fn kByRows[] = {&bf16_gemv_panel_m<V, int(Ms) + 1, NV>...};
  kByRows[m - 1](n, k, a, lda, b, c, ldc, ep);
}

// Bf16WidenFn: two rows per packed pair-row, kWidth columns per load.
template <class V>
static void bf16_widen(const uint16_t* panel, int p0, int kc, int c0, int nr, float* dst) {
  constexpr int W = V::kWidth;
  for (int p = 0; p < kc; p += 2) {
    const uint16_t* line = panel + size_t((p0 + p) / 2) * 2 * kBf16PanelWidth + 2 * c0;
    for (int c = 0; c < nr; c += W) {
      typename V::Reg even, odd;
      V::load_bf16_pairs(line + 2 * c, even, odd);
      V::store(dst + p * nr + c, even);
      V::store(dst + (p + 1) * nr + c, odd);
    }
  }
}

// Bf16GemvPanelFn for up to MAX_M rows.
template <class V, int MAX_M>
static void bf16_gemv_panel(int m, int n, int k, const float* a, size_t lda, const uint16_t* b,
                            float* c, size_t ldc, const GemmEpilogue* ep) {
  constexpr int NV = kBf16PanelWidth / V::kWidth;
  bf16_gemv_panel_dispatch<V, NV>(std::make_index_sequence<MAX_M>{}, m, n, k, a, lda, b, c, ldc,
                                  ep);
}

}  // namespace pyengine::kernels
