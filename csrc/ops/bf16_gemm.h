// Drivers for bf16-weight products (kernels/bf16_gemm_kernels.h): packing fp32 weights to bf16
// panels once, and the threading split around the per-level kernels. No intrinsics here.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/isa_level.h"
#include "kernels/bf16_gemm_kernels.h"
#include "ops/gemm_args.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {

using kernels::Bf16GemmKernels;

const Bf16GemmKernels& bf16_gemm_kernels(cpu::IsaLevel level);

// fp32 -> bf16, rounded to nearest even (NaN stays NaN).
uint16_t f32_to_bf16(float x);

// uint16 elements of B[K, N] packed in the kernels' panel layout.
size_t bf16_packed_b_size(int64_t n, int64_t k);

// Packs B, element (k, n) at src[n * stride_n + k * stride_k] (a torch-style weight W[N, K] is
// stride_n = K, stride_k = 1), rounding each value to bf16; padding is zero.
void bf16_pack_b(const float* src, int64_t stride_n, int64_t stride_k, int64_t n, int64_t k,
                 uint16_t* packed, runtime::ThreadPool& pool);

// The product of ops/gemm_args.h with B packed by bf16_pack_b. On the tile path A is rounded to
// bf16 too (subnormals to zero, as the tile unit reads them); otherwise A is used in fp32. Every
// element is computed the same way for any thread count. batch_invariant: the many-row path
// (tiles, or widened weights) for any row count, so a row's result is the same in any batch.
using Bf16GemmArgs = GemmArgs<uint16_t>;
void bf16_gemm_packed(const Bf16GemmKernels& kt, const Bf16GemmArgs& args,
                      runtime::ThreadPool& pool, bool batch_invariant = false);

// Which kernels a product of `rows` rows runs: the few-row kernel (in groups of gemv_max_m),
// the level's fp32 micro-kernel on widened weights, or the AMX tiles (which round A to bf16).
enum class Bf16Path { kGemv, kWidened, kTiles };
Bf16Path bf16_gemm_path(const Bf16GemmKernels& kt, int64_t rows, bool batch_invariant = false);
const char* bf16_path_name(Bf16Path path);

}  // namespace pyengine::ops
