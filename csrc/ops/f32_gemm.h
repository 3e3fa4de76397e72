// Portable fp32 GEMM drivers: weight packing, cache blocking and the threading split around the
// per-ISA micro-kernels of kernels/f32_gemm_kernels.h. No intrinsics here.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/isa_level.h"
#include "kernels/f32_gemm_kernels.h"
#include "ops/gemm_args.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {

using kernels::F32GemmKernels;

// The kernel table of one ISA level (the packed layout below depends on its nr).
const F32GemmKernels& f32_gemm_kernels(cpu::IsaLevel level);

// Floats needed for B[K, N] packed as ceil(N / nr) panels of [K][nr].
size_t f32_packed_b_size(int64_t n, int64_t k, int nr);

// Packs B, element (k, n) at src[n * stride_n + k * stride_k], into panels [ceil(N/nr)][K][nr]
// (panel j holds columns j*nr .. j*nr+nr-1; columns past N are zero). A torch-style weight
// W[N, K] is (stride_n = K, stride_k = 1); a row-major B[K, N] is (stride_n = 1, stride_k = N).
void f32_pack_b(const float* src, int64_t stride_n, int64_t stride_k, int64_t n, int64_t k, int nr,
                float* packed, runtime::ThreadPool& pool);

// The product of ops/gemm_args.h with B packed by f32_pack_b with kt.nr. batch_invariant: the
// many-row path for any row count, so a row's result is the same in any batch.
using F32GemmArgs = GemmArgs<float>;
void f32_gemm_packed(const F32GemmKernels& kt, const F32GemmArgs& args, runtime::ThreadPool& pool,
                     bool batch_invariant = false);

// C[M, N] = A[M, K] @ B[K, N], all row-major with the given row strides. B is packed per call.
void f32_matmul(cpu::IsaLevel level, int64_t m, int64_t n, int64_t k, const float* a, size_t lda,
                const float* b, size_t ldb, float* c, size_t ldc);

// Where the many-rows path reads B: slices [kc][nr] of panel j (columns j*nr ..) from row p0, at
// fn(ctx, j, p0, kc), valid until the same thread's next call. No fn: args.b_packed, packed by
// f32_pack_b. Other weight formats (bf16) widen their slices into scratch here.
struct F32PanelSource {
  const float* (*fn)(const void* ctx, int64_t j, int64_t p0, int kc) = nullptr;
  const void* ctx = nullptr;
};
// The many-rows path of f32_gemm_packed (cache-blocked micro-tiles) for any row count, B from src.
void f32_gemm_blocked(const F32GemmKernels& kt, const F32GemmArgs& args, const F32PanelSource& src,
                      runtime::ThreadPool& pool);

}  // namespace pyengine::ops
