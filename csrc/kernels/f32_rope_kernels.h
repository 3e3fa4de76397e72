// The rotary position embedding (RoPE) kernels every ISA level implements, and the per-level
// tables. Portable header: no intrinsics here.
#pragma once
#include <cstddef>

namespace pyengine::kernels {

// Rotates one token's heads in place: x [n_heads, head_dim], by the angles of one position,
// cos/sin [half] (that position's rows of the precomputed tables). rotary_dim = 2 * half <=
// head_dim; x[h, rotary_dim:] is not touched (partial rotary). For each pair (i, p):
//   x_i' = x_i cos - x_p sin,  x_p' = x_p cos + x_i sin
// rotate_half (HF Llama, GPT-NeoX): pairs (k, k + half) with cos[k], sin[k], k < half.
// interleaved (GPT-J, GGML):       pairs (2k, 2k + 1) with cos[k], sin[k], k < half.
// Both round identically: a permutation of x turns one layout's result into the other's, bit
// for bit. Reads and writes x[h * head_dim + 0 : rotary_dim] only.
using F32RopeTokenFn = void (*)(size_t n_heads, size_t head_dim, size_t half, const float* cos,
                                const float* sin, float* x);

struct F32RopeKernels {
  const char* name;  // e.g. "f32_rope__avx512"
  F32RopeTokenFn rotate_half;
  F32RopeTokenFn interleaved;
};

namespace generic {
const F32RopeKernels& f32_rope_kernels();
}  // namespace generic
namespace avx2 {
const F32RopeKernels& f32_rope_kernels();
}  // namespace avx2
namespace avx512 {
const F32RopeKernels& f32_rope_kernels();
}  // namespace avx512

}  // namespace pyengine::kernels
