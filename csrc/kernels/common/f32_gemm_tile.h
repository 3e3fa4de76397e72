// The fp32 micro-kernels, written once against a vector-traits type V and compiled once per ISA
// level (see kernels/<isa>/f32_gemm__<isa>.cpp). Everything here is a template on V, and every V
// lives in its ISA's namespace, so instantiations never collide across levels at link time.
#pragma once
#include <cstddef>
#include <utility>

#include "kernels/f32_gemm_kernels.h"

namespace pyengine::kernels {

// Adds the previous C (when accumulating) and the epilogue, then stores C[0:MR, 0:n].
template <class V, int MR, int NV>
static inline void f32_store_tile(typename V::Reg (&acc)[MR][NV], int n, float* c, size_t ldc,
                                  bool accumulate, const GemmEpilogue* ep) {
  constexpr int W = V::kWidth;
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) {
    const int lanes = n - v * W;
    if (lanes <= 0) break;
    const bool full = lanes >= W;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc + v * W;
      typename V::Reg r = acc[i][v];
      if (accumulate) r = V::add(r, full ? V::load(ci) : V::load_first(ci, lanes));
      if (ep != nullptr) {
        if (ep->bias != nullptr) {
          const float* bi = ep->bias + v * W;
          r = V::add(r, full ? V::load(bi) : V::load_first(bi, lanes));
        }
        if (ep->residual != nullptr) {
          const float* ri = ep->residual + i * ep->ldr + v * W;
          r = V::add(r, full ? V::load(ri) : V::load_first(ri, lanes));
        }
      }
      if (full) {
        V::store(ci, r);
      } else {
        V::store_first(ci, r, lanes);
      }
    }
  }
}

// M x (NV * W) register tile; K is walked one packed row of A and B at a time. A is packed as
// [k][MR] (MR = the kernel's full tile height; an edge tile uses its first M rows).
template <class V, int M, int MR, int NV>
static void f32_gemm_tile_m(int n, int k, const float* a, const float* b, float* c, size_t ldc,
                            bool accumulate, const GemmEpilogue* ep) {
  constexpr int W = V::kWidth;
  constexpr int NR = NV * W;
  // The C tile is read only at the end, but its lines are in L3 by then (the rest of C's block
  // row went through L2 since): fetch them now so they arrive while the FMAs run.
  if (accumulate) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) V::prefetch(c + i * ldc + v * W);
      V::prefetch(c + i * ldc + NR - 1);
    }
  }
  typename V::Reg acc[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();

  // B rows this far ahead are prefetched: a panel's first tile finds it cold in L3.
  constexpr int kPrefetchRows = 16;
#pragma GCC unroll 4
  for (int p = 0; p < k; ++p) {
    typename V::Reg bv[NV];
    V::prefetch(b + (p + kPrefetchRows) * NR);
    if constexpr (NR * sizeof(float) > 64) V::prefetch(b + (p + kPrefetchRows) * NR + 16);
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + p * NR + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const typename V::Reg ai = V::broadcast(a[p * MR + i]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(ai, bv[v], acc[i][v]);
    }
  }
  f32_store_tile<V, M, NV>(acc, n, c, ldc, accumulate, ep);
}

template <class V, int MR, int NV, size_t... Ms>
static void f32_gemm_tile_dispatch(std::index_sequence<Ms...>, int m, int n, int k, const float* a,
                                   const float* b, float* c, size_t ldc, bool accumulate,
                                   const GemmEpilogue* ep) {
  using Fn =
      void (*)(int, int, const float*, const float*, float*, size_t, bool, const GemmEpilogue*);
  static constexpr Fn kByRows[] = {&f32_gemm_tile_m<V, int(Ms) + 1, MR, NV>...};
  kByRows[m - 1](n, k, a, b, c, ldc, accumulate, ep);
}

// F32GemmTileFn for an MR x (NV * W) tile: edge rows go to the tile compiled for exactly m rows.
template <class V, int MR, int NV>
static void f32_gemm_tile(int m, int n, int k, const float* a, const float* b, float* c, size_t ldc,
                          bool accumulate, const GemmEpilogue* ep) {
  f32_gemm_tile_dispatch<V, MR, NV>(std::make_index_sequence<MR>{}, m, n, k, a, b, c, ldc,
                                    accumulate, ep);
}

// Few rows against one panel over all of K. With so few rows the FMA latency chain, not the
// loads, would limit speed, so CHAINS interleaved partial sums (over k mod CHAINS) keep the FMA
// units busy while the panel streams from memory; they are added in a fixed order at the end.
template <class V, int M, int NV>
static void f32_gemv_panel_m(int n, int k, const float* a, size_t lda, const float* b, float* c,
                             size_t ldc, const GemmEpilogue* ep) {
  constexpr int W = V::kWidth;
  constexpr int NR = NV * W;
  constexpr int CHAINS = M >= 4 ? 1 : 4 / M;
  typename V::Reg acc[CHAINS][M][NV];
#pragma GCC unroll 16
  for (int h = 0; h < CHAINS; ++h)
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[h][i][v] = V::zero();

  int p = 0;
  for (; p + CHAINS <= k; p += CHAINS) {
#pragma GCC unroll 16
    for (int h = 0; h < CHAINS; ++h) {
      typename V::Reg bv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = V::load(b + (p + h) * NR + v * W);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i) {
        const typename V::Reg ai = V::broadcast(a[i * lda + p + h]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[h][i][v] = V::fmadd(ai, bv[v], acc[h][i][v]);
      }
    }
  }
  for (; p < k; ++p) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const typename V::Reg bv = V::load(b + p * NR + v * W);
#pragma GCC unroll 16
      for (int i = 0; i < M; ++i)
        acc[0][i][v] = V::fmadd(V::broadcast(a[i * lda + p]), bv, acc[0][i][v]);
    }
  }
#pragma GCC unroll 16
  for (int h = 1; h < CHAINS; ++h)
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[0][i][v] = V::add(acc[0][i][v], acc[h][i][v]);
  f32_store_tile<V, M, NV>(acc[0], n, c, ldc, false, ep);
}

template <class V, int NV, size_t... Ms>
static void f32_gemv_panel_dispatch(std::index_sequence<Ms...>, int m, int n, int k, const float* a,
                                    size_t lda, const float* b, float* c, size_t ldc,
                                    const GemmEpilogue* ep) {
  using Fn =
      void (*)(int, int, const float*, size_t, const float*, float*, size_t, const GemmEpilogue*);
  static constexpr Fn kByRows[] = {&f32_gemv_panel_m<V, int(Ms) + 1, NV>...};
  kByRows[m - 1](n, k, a, lda, b, c, ldc, ep);
}

// F32GemvPanelFn for up to MAX_M rows and panels of NV * W columns.
template <class V, int MAX_M, int NV>
static void f32_gemv_panel(int m, int n, int k, const float* a, size_t lda, const float* b,
                           float* c, size_t ldc, const GemmEpilogue* ep) {
  f32_gemv_panel_dispatch<V, NV>(std::make_index_sequence<MAX_M>{}, m, n, k, a, lda, b, c, ldc, ep);
}

}  // namespace pyengine::kernels
