// Elementwise add and the MLP activations, written once against a vector-traits type V and
// compiled per ISA level (kernels/<isa>/f32_elementwise__<isa>.cpp).
// Contracts: kernels/f32_elementwise_kernels.h.
#pragma once
#include <cstddef>

#include "kernels/common/f32_math.h"
#include "kernels/f32_elementwise_kernels.h"

namespace pyengine::kernels {

// y[j] = f(x[j]) over n floats (unary) or f(a[j], b[j]) (binary), the tail through masked
// loads and stores: nothing past the arrays is read or written.
template <class V, class F>
static inline void f32_map(size_t n, const float* x, float* y, F f) {
  constexpr size_t W = V::kWidth;
  size_t j = 0;
  for (; j + W <= n; j += W) V::store(y + j, f(V::load(x + j)));
  if (j < n) {
    const int lanes = int(n - j);
    V::store_first(y + j, f(V::load_first(x + j, lanes)), lanes);
  }
}

template <class V, class F>
static inline void f32_map2(size_t n, const float* a, const float* b, float* y, F f) {
  constexpr size_t W = V::kWidth;
  size_t j = 0;
  for (; j + W <= n; j += W) V::store(y + j, f(V::load(a + j), V::load(b + j)));
  if (j < n) {
    const int lanes = int(n - j);
    V::store_first(y + j, f(V::load_first(a + j, lanes), V::load_first(b + j, lanes)), lanes);
  }
}

template <class V>
static void f32_add(size_t n, const float* a, const float* b, float* y) {
  f32_map2<V>(n, a, b, y, [](auto u, auto v) { return V::add(u, v); });
}

template <class V>
static void f32_gelu_tanh(size_t n, const float* x, float* y) {
  using R = typename V::Reg;
  f32_map<V>(n, x, y, [](R v) {
    // sqrt(2/pi) (x + 0.044715 x^3) = sqrt(2/pi) x (1 + 0.044715 x^2)
    const R one = V::broadcast(1.f);
    const R inner = V::mul(v, V::fmadd(V::mul(v, v), V::broadcast(0.044715f), one));
    const R t = f32_tanh<V>(V::mul(inner, V::broadcast(0.7978845608028654f)));
    return V::mul(V::mul(V::broadcast(0.5f), v), V::add(one, t));
  });
}

template <class V>
static void f32_gelu_erf(size_t n, const float* x, float* y) {
  using R = typename V::Reg;
  f32_map<V>(n, x, y, [](R v) {
    const R e = f32_erf<V>(V::mul(v, V::broadcast(0.7071067811865476f)));
    return V::mul(V::mul(V::broadcast(0.5f), v), V::add(V::broadcast(1.f), e));
  });
}

template <class V>
static void f32_swiglu(size_t rows, size_t inter, const float* gate_up, float* y) {
  using R = typename V::Reg;
  for (size_t r = 0; r < rows; ++r, gate_up += 2 * inter, y += inter) {
    f32_map2<V>(inter, gate_up, gate_up + inter, y,
                [](R g, R u) { return V::mul(V::mul(g, f32_sigmoid<V>(g)), u); });
  }
}

}  // namespace pyengine::kernels
