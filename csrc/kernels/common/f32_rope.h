// Rotary position embedding, written once against a vector-traits type V and compiled per ISA
// level (kernels/<isa>/f32_rope__<isa>.cpp). Contract: kernels/f32_rope_kernels.h.
#pragma once
#include <cstddef>

#include "kernels/f32_rope_kernels.h"

namespace pyengine::kernels {

// Pairs (k, k + half): both halves are contiguous, so cos and sin are read straight from the
// table row.
template <class V>
static void f32_rope_rotate_half(size_t n_heads, size_t head_dim, size_t half, const float* cos,
                                 const float* sin, float* x) {
  using R = typename V::Reg;
  constexpr size_t W = V::kWidth;
  auto rotate = [](R a, R b, R c, R s, R* a_out, R* b_out) {
    *a_out = V::fnmadd(b, s, V::mul(a, c));  // a c - b s
    *b_out = V::fmadd(a, s, V::mul(b, c));   // b c + a s
  };
  for (size_t h = 0; h < n_heads; ++h) {
    float* lo = x + h * head_dim;
    float* hi = lo + half;
    size_t k = 0;
    for (; k + W <= half; k += W) {
      R a, b;
      rotate(V::load(lo + k), V::load(hi + k), V::load(cos + k), V::load(sin + k), &a, &b);
      V::store(lo + k, a);
      V::store(hi + k, b);
    }
    if (k < half) {
      const int lanes = int(half - k);
      R a, b;
      rotate(V::load_first(lo + k, lanes), V::load_first(hi + k, lanes),
             V::load_first(cos + k, lanes), V::load_first(sin + k, lanes), &a, &b);
      V::store_first(lo + k, a, lanes);
      V::store_first(hi + k, b, lanes);
    }
  }
}

// Pairs (2k, 2k + 1): with c2 = (c0, c0, c1, c1, ...) and s2 = (-s0, s0, -s1, s1, ...),
// x' = x * c2 + swap_pairs(x) * s2. c2 and s2 are built once per token, a chunk of pairs at a
// time (a stack buffer, no allocation), then applied to every head.
template <class V>
static void f32_rope_interleaved(size_t n_heads, size_t head_dim, size_t half, const float* cos,
                                 const float* sin, float* x) {
  using R = typename V::Reg;
  constexpr size_t W = V::kWidth;
  constexpr size_t kChunkPairs = 128;
  alignas(64) float c2[2 * kChunkPairs];
  alignas(64) float s2[2 * kChunkPairs];
  for (size_t k0 = 0; k0 < half; k0 += kChunkPairs) {
    const size_t pairs = half - k0 < kChunkPairs ? half - k0 : kChunkPairs;
    for (size_t k = 0; k < pairs; ++k) {
      c2[2 * k] = c2[2 * k + 1] = cos[k0 + k];
      s2[2 * k] = -sin[k0 + k];
      s2[2 * k + 1] = sin[k0 + k];
    }
    const size_t len = 2 * pairs;
    for (size_t h = 0; h < n_heads; ++h) {
      float* v = x + h * head_dim + 2 * k0;
      size_t j = 0;
      for (; j + W <= len; j += W) {
        const R a = V::load(v + j);
        V::store(v + j, V::fmadd(V::swap_pairs(a), V::load(s2 + j), V::mul(a, V::load(c2 + j))));
      }
      if (j < len) {  // an even number of lanes: pairs never straddle the tail
        const int lanes = int(len - j);
        const R a = V::load_first(v + j, lanes);
        const R y = V::fmadd(V::swap_pairs(a), V::load_first(s2 + j, lanes),
                             V::mul(a, V::load_first(c2 + j, lanes)));
        V::store_first(v + j, y, lanes);
      }
    }
  }
}

}  // namespace pyengine::kernels
