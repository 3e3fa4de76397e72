// Softmax rows, written once against a vector-traits type V and compiled per ISA level
// (kernels/<isa>/f32_softmax__<isa>.cpp). Contract: kernels/f32_softmax_kernels.h.
#pragma once
#include <cstddef>
#include <limits>

#include "kernels/common/f32_math.h"
#include "kernels/f32_softmax_kernels.h"

namespace pyengine::kernels {

template <class V>
static inline float f32_row_max(const float* x, size_t n) {
  using R = typename V::Reg;
  constexpr size_t W = V::kWidth;
  const R neg_inf = V::broadcast(-std::numeric_limits<float>::infinity());
  R m0 = neg_inf, m1 = neg_inf;
  size_t j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    m0 = V::max(m0, V::load(x + j));
    m1 = V::max(m1, V::load(x + j + W));
  }
  for (; j + W <= n; j += W) m0 = V::max(m0, V::load(x + j));
  if (j < n) {
    const int lanes = int(n - j);
    m1 = V::max(m1, V::select(V::first_n(lanes), V::load_first(x + j, lanes), neg_inf));
  }
  return V::reduce_max(V::max(m0, m1));
}

// Pass 1: the row max. Pass 2: e = exp(x - max) stored to y (each y[j] after x[j] is read, so
// y may be x) and summed. Pass 3: y *= 1 / sum.
template <class V>
static void f32_softmax(size_t rows, size_t n, const float* x, float* y) {
  using R = typename V::Reg;
  constexpr size_t W = V::kWidth;
  for (size_t r = 0; r < rows; ++r, x += n, y += n) {
    const R m = V::broadcast(f32_row_max<V>(x, n));
    R s0 = V::zero(), s1 = V::zero();
    size_t j = 0;
    for (; j + 2 * W <= n; j += 2 * W) {
      const R e0 = f32_exp<V>(V::sub(V::load(x + j), m));
      const R e1 = f32_exp<V>(V::sub(V::load(x + j + W), m));
      V::store(y + j, e0);
      V::store(y + j + W, e1);
      s0 = V::add(s0, e0);
      s1 = V::add(s1, e1);
    }
    for (; j + W <= n; j += W) {
      const R e = f32_exp<V>(V::sub(V::load(x + j), m));
      V::store(y + j, e);
      s0 = V::add(s0, e);
    }
    if (j < n) {
      const int lanes = int(n - j);
      const R e = f32_exp<V>(V::sub(V::load_first(x + j, lanes), m));
      V::store_first(y + j, e, lanes);
      s1 = V::add(s1, V::select(V::first_n(lanes), e, V::zero()));
    }
    const R inv = V::broadcast(1.f / V::reduce_add(V::add(s0, s1)));
    for (j = 0; j + W <= n; j += W) V::store(y + j, V::mul(V::load(y + j), inv));
    if (j < n) {
      const int lanes = int(n - j);
      V::store_first(y + j, V::mul(V::load_first(y + j, lanes), inv), lanes);
    }
  }
}

}  // namespace pyengine::kernels
