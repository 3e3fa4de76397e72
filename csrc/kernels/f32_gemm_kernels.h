// The fp32 GEMM/GEMV kernel interface every ISA level implements, and the per-level tables.
// Portable header: no intrinsics here, so it is safe to include from any translation unit.
#pragma once
#include <cstddef>

namespace pyengine::kernels {

// Fused epilogue, applied once to each output element after its last K block:
//   C[i, j] = acc[i, j] + bias[j] + residual[i, j]
// Pointers are already offset to the tile's first row/column; nullptr means "absent".
struct GemmEpilogue {
  const float* bias;      // [n]
  const float* residual;  // [m, ldr]
  size_t ldr;
};

// Micro-tile: C[0:m, 0:n] (= or +=) A[0:m, 0:k] @ B[0:k, 0:n]
//   a: one packed A micro-panel, row p at a + p * mr (element (i, p) at a[p * mr + i]).
//   b: one packed B panel, row p at b + p * nr, nr floats, zero padded past n.
//   c: row stride ldc. Accepts 1 <= m <= mr, 1 <= n <= nr, k >= 0.
//   accumulate == false: C is never read (beta = 0). ep == nullptr: no epilogue.
//   Touches exactly C[0:m, 0:n]; reads a[p * mr + i] for i < m, b[0:k*nr], ep's [0:m, 0:n].
using F32GemmTileFn = void (*)(int m, int n, int k, const float* a, const float* b, float* c,
                               size_t ldc, bool accumulate, const GemmEpilogue* ep);

// Few-row product over one packed panel and the whole of K, streaming the panel once:
//   C[0:m, 0:n] = A[0:m, 0:K] @ B[0:K, 0:n] (+ epilogue). Accepts 1 <= m <= gemv_max_m.
//   a: row-major, row stride lda, read in place (too few rows to be worth packing).
using F32GemvPanelFn = void (*)(int m, int n, int k, const float* a, size_t lda, const float* b,
                                float* c, size_t ldc, const GemmEpilogue* ep);

struct F32GemmKernels {
  const char* name;  // e.g. "f32_gemm_12x32__avx512"
  int mr, nr;        // micro-tile rows x columns; nr is also the packed panel width
  int kc, mc;        // cache blocking: K block (B panel slice in L1/L2), rows per M block (L2)
  int gemv_max_m;    // rows up to which the GEMV path streams the weights once
  F32GemmTileFn tile;
  F32GemvPanelFn gemv_panel;
};

// Machine-limit probes, per level: the widest FMA the level has, and a streaming read.
struct ProbeKernels {
  // Runs `iters` iterations of independent FMA chains; returns the flops performed.
  double (*fma_loop)(long iters, float* sink);
  // Sums n floats (n a multiple of 64, p 64-byte aligned) with vector loads.
  float (*stream_sum)(const float* p, size_t n);
};

namespace generic {
const F32GemmKernels& f32_gemm_kernels();
const ProbeKernels& probe_kernels();
}  // namespace generic
namespace avx2 {
const F32GemmKernels& f32_gemm_kernels();
const ProbeKernels& probe_kernels();
}  // namespace avx2
namespace avx512 {
const F32GemmKernels& f32_gemm_kernels();
const ProbeKernels& probe_kernels();
}  // namespace avx512

}  // namespace pyengine::kernels
