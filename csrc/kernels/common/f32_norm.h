// RMSNorm and LayerNorm rows, written once against a vector-traits type V and compiled per ISA
// level (kernels/<isa>/f32_norm__<isa>.cpp). Contracts: kernels/f32_norm_kernels.h.
#pragma once
#include <cmath>
#include <cstddef>

#include "kernels/f32_norm_kernels.h"

namespace pyengine::kernels {

// Sum over x[0:n] of f(x[j]) for f(v) = v (Square = false) or (v - shift)^2 (Square = true).
// Four independent accumulators hide the add latency; they and the masked tail are combined in
// a fixed order, so the result depends on n and the ISA level only.
template <class V, bool Square>
static inline float f32_row_sum(const float* x, size_t n, float shift) {
  using R = typename V::Reg;
  constexpr size_t W = V::kWidth;
  const R c = V::broadcast(shift);
  auto term = [&](R v, R acc) {
    if constexpr (Square) {
      const R d = V::sub(v, c);
      return V::fmadd(d, d, acc);
    } else {
      return V::add(v, acc);
    }
  };
  R a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
  size_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) {
    a0 = term(V::load(x + j), a0);
    a1 = term(V::load(x + j + W), a1);
    a2 = term(V::load(x + j + 2 * W), a2);
    a3 = term(V::load(x + j + 3 * W), a3);
  }
  for (; j + W <= n; j += W) a0 = term(V::load(x + j), a0);
  if (j < n) {
    const int lanes = int(n - j);
    // Lanes past the row would add shift^2: keep only the row's.
    const R t = term(V::load_first(x + j, lanes), V::zero());
    a1 = V::add(a1, V::select(V::first_n(lanes), t, V::zero()));
  }
  return V::reduce_add(V::add(V::add(a0, a1), V::add(a2, a3)));
}

template <class V>
static void f32_rms_norm(size_t rows, size_t n, const float* x, const float* weight, float eps,
                         float* y) {
  constexpr size_t W = V::kWidth;
  for (size_t r = 0; r < rows; ++r, x += n, y += n) {
    const float mean_sq = f32_row_sum<V, true>(x, n, 0.f) / float(n);
    const typename V::Reg scale = V::broadcast(1.f / std::sqrt(mean_sq + eps));
    size_t j = 0;
    for (; j + W <= n; j += W) {
      V::store(y + j, V::mul(V::mul(V::load(x + j), scale), V::load(weight + j)));
    }
    if (j < n) {
      const int lanes = int(n - j);
      const auto v =
          V::mul(V::mul(V::load_first(x + j, lanes), scale), V::load_first(weight + j, lanes));
      V::store_first(y + j, v, lanes);
    }
  }
}

template <class V>
static void f32_layer_norm(size_t rows, size_t n, const float* x, const float* weight,
                           const float* bias, float eps, float* y) {
  using R = typename V::Reg;
  constexpr size_t W = V::kWidth;
  for (size_t r = 0; r < rows; ++r, x += n, y += n) {
    // Two passes: the variance of x - mean does not cancel the way E[x^2] - mean^2 does.
    const float mean = f32_row_sum<V, false>(x, n, 0.f) / float(n);
    const float var = f32_row_sum<V, true>(x, n, mean) / float(n);
    const R m = V::broadcast(mean);
    const R rstd = V::broadcast(1.f / std::sqrt(var + eps));
    auto norm = [&](R v, R w, const float* b, int lanes) {
      const R t = V::mul(V::sub(v, m), rstd);
      if (b == nullptr) return V::mul(t, w);
      return V::fmadd(t, w, lanes == int(W) ? V::load(b) : V::load_first(b, lanes));
    };
    size_t j = 0;
    for (; j + W <= n; j += W) {
      V::store(y + j, norm(V::load(x + j), V::load(weight + j), bias ? bias + j : nullptr, int(W)));
    }
    if (j < n) {
      const int lanes = int(n - j);
      const R v = norm(V::load_first(x + j, lanes), V::load_first(weight + j, lanes),
                       bias ? bias + j : nullptr, lanes);
      V::store_first(y + j, v, lanes);
    }
  }
}

}  // namespace pyengine::kernels
