// Elementwise add and the MLP activations, written once against a vector-traits type V and
// compiled per ISA level (kernels/<isa>/f32_elementwise__<isa>.cpp).
// Contracts: kernels/f32_elementwise_kernels.h.
#pragma once
#include <cstddef>

#include "kernels/common/f32_math.h"
#include "kernels/common/vec_multi.h"
#include "kernels/f32_elementwise_kernels.h"

namespace pyengine::kernels {

// y[j] = Op::apply(x[j]) over n floats (unary) or Op::apply(a[j], b[j]) (binary), Op::apply
// being a function template over vector traits. The main loop runs it on MultiVec<V, 4>: four
// vectors with their instructions interleaved (each activation is one dependent chain of some
// 25 instructions, 4 cycles apiece); then single vectors, then the tail through masked loads and
// stores: nothing past the arrays is read or written. Every lane goes through the same
// operations wherever it falls, so any split of [0, n) gives the same bits.
template <class V, class Op>
static inline void f32_map(size_t n, const float* x, float* y) {
  using V4 = MultiVec<V, 4>;
  constexpr size_t W = V::kWidth;
  size_t j = 0;
  for (; j + 4 * W <= n; j += 4 * W) V4::store(y + j, Op::template apply<V4>(V4::load(x + j)));
  for (; j + W <= n; j += W) V::store(y + j, Op::template apply<V>(V::load(x + j)));
  if (j < n) {
    const int lanes = int(n - j);
    V::store_first(y + j, Op::template apply<V>(V::load_first(x + j, lanes)), lanes);
  }
}

template <class V, class Op, int kUnroll = 4>
static inline void f32_map2(size_t n, const float* a, const float* b, float* y) {
  using VN = MultiVec<V, kUnroll>;
  constexpr size_t W = V::kWidth;
  size_t j = 0;
  for (; j + kUnroll * W <= n; j += kUnroll * W) {
    VN::store(y + j, Op::template apply<VN>(VN::load(a + j), VN::load(b + j)));
  }
  for (; j + W <= n; j += W) V::store(y + j, Op::template apply<V>(V::load(a + j), V::load(b + j)));
  if (j < n) {
    const int lanes = int(n - j);
    V::store_first(y + j,
                   Op::template apply<V>(V::load_first(a + j, lanes), V::load_first(b + j, lanes)),
                   lanes);
  }
}

struct AddOp {
  template <class T>
  static inline typename T::Reg apply(typename T::Reg a, typename T::Reg b) {
    return T::add(a, b);
  }
};

// 0.5 x (1 + tanh(u)) = x sigmoid(2 u), u = sqrt(2/pi) (x + 0.044715 x^3): one exp and one
// reciprocal, and for x < 0 the result is x e / (1 + e) itself, not x (1 + tanh(u)) / 2 with
// 1 + tanh(u) cancelling.
struct GeluTanhOp {
  template <class T>
  static inline typename T::Reg apply(typename T::Reg x) {
    using R = typename T::Reg;
    // 2 u = 2 sqrt(2/pi) x (1 + 0.044715 x^2)
    const R c = T::broadcast(1.5957691216057308f);  // 2 sqrt(2/pi)
    const R w = T::fmadd(T::mul(x, x), T::broadcast(float(0.044715 * 1.5957691216057308)), c);
    return T::mul(x, f32_sigmoid<T>(T::mul(x, w)));
  }
};

// x Phi(x) = 0.5 x (1 + erf(x / sqrt(2))) (no cancellation for x < 0: see f32_x_normal_cdf).
struct GeluErfOp {
  template <class T>
  static inline typename T::Reg apply(typename T::Reg x) {
    return f32_x_normal_cdf<T>(x);
  }
};

// silu(g) u = g sigmoid(g) u.
struct SiluMulOp {
  template <class T>
  static inline typename T::Reg apply(typename T::Reg g, typename T::Reg u) {
    return T::mul(T::mul(g, f32_sigmoid<T>(g)), u);
  }
};

// gelu_tanh(g) u (Gemma's GeGLU).
struct GeluTanhMulOp {
  template <class T>
  static inline typename T::Reg apply(typename T::Reg g, typename T::Reg u) {
    return T::mul(GeluTanhOp::apply<T>(g), u);
  }
};

// y = f(x) over n floats for a function with one run-time parameter (scale, soft-cap): one
// vector per iteration (these ops run once per step on one buffer), the tail masked.
template <class V, class F>
static inline void f32_map_with(size_t n, const float* x, float* y, F f) {
  constexpr size_t W = V::kWidth;
  size_t j = 0;
  for (; j + W <= n; j += W) V::store(y + j, f(V::load(x + j)));
  if (j < n) {
    const int lanes = int(n - j);
    V::store_first(y + j, f(V::load_first(x + j, lanes)), lanes);
  }
}

// The kernels inline everything they call ([[gnu::flatten]]): GCC's heuristics would otherwise
// leave the four-vector exp out of line, passing its registers through memory. add keeps one
// vector per iteration: it is bound by memory traffic, and four measured slower.
template <class V>
[[gnu::flatten]] static void f32_add(size_t n, const float* a, const float* b, float* y) {
  f32_map2<V, AddOp, 1>(n, a, b, y);
}

template <class V>
[[gnu::flatten]] static void f32_gelu_tanh(size_t n, const float* x, float* y) {
  f32_map<V, GeluTanhOp>(n, x, y);
}

template <class V>
[[gnu::flatten]] static void f32_gelu_erf(size_t n, const float* x, float* y) {
  f32_map<V, GeluErfOp>(n, x, y);
}

template <class V>
[[gnu::flatten]] static void f32_swiglu(size_t rows, size_t inter, const float* gate_up, float* y) {
  for (size_t r = 0; r < rows; ++r, gate_up += 2 * inter, y += inter) {
    f32_map2<V, SiluMulOp>(inter, gate_up, gate_up + inter, y);
  }
}

template <class V>
[[gnu::flatten]] static void f32_geglu(size_t rows, size_t inter, const float* gate_up, float* y) {
  for (size_t r = 0; r < rows; ++r, gate_up += 2 * inter, y += inter) {
    f32_map2<V, GeluTanhMulOp>(inter, gate_up, gate_up + inter, y);
  }
}

template <class V>
[[gnu::flatten]] static void f32_scale(size_t n, float s, const float* x, float* y) {
  const typename V::Reg sv = V::broadcast(s);
  f32_map_with<V>(n, x, y, [&](typename V::Reg v) { return V::mul(v, sv); });
}

template <class V>
[[gnu::flatten]] static void f32_softcap(size_t n, float cap, const float* x, float* y) {
  const typename V::Reg c = V::broadcast(cap), inv = V::broadcast(1.f / cap);
  f32_map_with<V>(n, x, y,
                  [&](typename V::Reg v) { return V::mul(c, f32_tanh<V>(V::mul(v, inv))); });
}

}  // namespace pyengine::kernels
