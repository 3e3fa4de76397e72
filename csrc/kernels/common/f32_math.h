// Vector transcendental functions written once against a vector-traits type V (see
// kernels/<isa>/vec_f32__<isa>.h) and compiled per ISA level with the kernels that use them.
//
// Accuracy (measured against float64 over dense grids of fp32 inputs, with and without FMA):
//   f32_exp   < 1.3 ulp; subnormal results within 1 * 2^-149 absolute
//   f32_tanh  < 1.1 ulp everywhere
//   f32_erf   < 1.3 ulp everywhere (< 8e-8 absolute)
// All three return NaN for NaN and never produce inf for a finite input. The polynomial
// coefficients are weighted minimax fits (float64 Lawson iterations on Chebyshev nodes), rounded
// to fp32 and checked in simulated fp32 arithmetic.
#pragma once

namespace pyengine::kernels {

// e^x. Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6 minimax
// polynomial for e^r, scaled by 2^n in two steps so n may range over [-150, 128]:
// x < -87.3 gives the correctly scaled subnormal (softmax tails, silu(-100) stay accurate),
// x < -104 gives 0, and x > 88.72 is clamped to e^88.72 (no inf). The clamp takes x as max's
// and min's *second* operand, which is the one x86 returns when either is NaN: NaN propagates.
template <class V>
static inline typename V::Reg f32_exp(typename V::Reg x) {
  using R = typename V::Reg;
  x = V::min(V::broadcast(88.72283f), V::max(V::broadcast(-104.0f), x));
  const R n = V::round(V::mul(x, V::broadcast(1.44269504088896341f)));
  R r = V::fmadd(n, V::broadcast(-0.693359375f), x);  // ln2 split in two for exactness
  r = V::fmadd(n, V::broadcast(2.12194440e-4f), r);
  R p = V::broadcast(1.9875691500e-4f);
  p = V::fmadd(p, r, V::broadcast(1.3981999507e-3f));
  p = V::fmadd(p, r, V::broadcast(8.3334519073e-3f));
  p = V::fmadd(p, r, V::broadcast(4.1665795894e-2f));
  p = V::fmadd(p, r, V::broadcast(1.6666665459e-1f));
  p = V::fmadd(p, r, V::broadcast(5.0000001201e-1f));
  p = V::fmadd(p, V::mul(r, r), V::add(r, V::broadcast(1.0f)));
  // Both halves of n lie in [-75, 64], inside pow2n's range; the second multiply rounds once.
  const R half = V::round(V::mul(n, V::broadcast(0.5f)));
  return V::mul(V::mul(p, V::pow2n(half)), V::pow2n(V::sub(n, half)));
}

// tanh(x). |x| < 0.875: x + x s P(s), s = x^2, P of degree 6 (no cancellation near 0).
// Otherwise sign(x) (1 - 2 / (e^{2|x|} + 1)): 2 / (e + 1) <= 0.29 there, so the subtraction
// loses at most a bit. Both branches are computed and the lane picks one.
template <class V>
static inline typename V::Reg f32_tanh(typename V::Reg x) {
  using R = typename V::Reg;
  const R t = V::abs(x);
  const R s = V::mul(x, x);
  R p = V::broadcast(-4.824177304e-04f);
  p = V::fmadd(p, s, V::broadcast(2.651009476e-03f));
  p = V::fmadd(p, s, V::broadcast(-8.331941441e-03f));
  p = V::fmadd(p, s, V::broadcast(2.169604227e-02f));
  p = V::fmadd(p, s, V::broadcast(-5.393717065e-02f));
  p = V::fmadd(p, s, V::broadcast(1.333306581e-01f));
  p = V::fmadd(p, s, V::broadcast(-3.333332539e-01f));
  const R small = V::fmadd(x, V::mul(p, s), x);
  const R one = V::broadcast(1.0f);
  const R e = f32_exp<V>(V::add(t, t));
  const R big = V::sub(one, V::div(V::broadcast(2.0f), V::add(e, one)));
  return V::select(V::lt(t, V::broadcast(0.875f)), small, V::copysign(big, x));
}

// erf(x). |x| < 0.921875: x + x P(x^2), P of degree 5 (P(0) = 2/sqrt(pi) - 1).
// Otherwise sign(x) (1 - e^{Q(|x|)}), Q of degree 6 fitted to log(erfc(|x|)) on [0.921875, 4]
// with weight erfc (the absolute error that reaches erf). |x| is clamped to 4, past which erf
// rounds to +-1 in fp32.
template <class V>
static inline typename V::Reg f32_erf(typename V::Reg x) {
  using R = typename V::Reg;
  const R t = V::min(V::broadcast(4.0f), V::abs(x));  // NaN stays NaN (see f32_exp)
  const R s = V::mul(t, t);
  R p = V::broadcast(-5.990891368e-04f);
  p = V::fmadd(p, s, V::broadcast(4.993189126e-03f));
  p = V::fmadd(p, s, V::broadcast(-2.676662430e-02f));
  p = V::fmadd(p, s, V::broadcast(1.128181666e-01f));
  p = V::fmadd(p, s, V::broadcast(-3.761249483e-01f));
  p = V::fmadd(p, s, V::broadcast(1.283791512e-01f));
  const R small = V::fmadd(x, p, x);
  R q = V::broadcast(1.947337878e-04f);
  q = V::fmadd(q, t, V::broadcast(-3.031593980e-03f));
  q = V::fmadd(q, t, V::broadcast(2.218137309e-02f));
  q = V::fmadd(q, t, V::broadcast(-1.038388610e-01f));
  q = V::fmadd(q, t, V::broadcast(-6.372858286e-01f));
  q = V::fmadd(q, t, V::broadcast(-1.127615452e+00f));
  q = V::fmadd(q, t, V::broadcast(-2.099207777e-04f));
  const R big = V::sub(V::broadcast(1.0f), f32_exp<V>(q));
  return V::select(V::lt(t, V::broadcast(0.921875f)), small, V::copysign(big, x));
}

// 1 / (1 + e^-x), from e = e^{-|x|} <= 1 so nothing overflows: 1 / (1 + e) for x >= 0 and
// e / (1 + e) for x < 0 (accurate for very negative x, down to the subnormals).
template <class V>
static inline typename V::Reg f32_sigmoid(typename V::Reg x) {
  using R = typename V::Reg;
  const R one = V::broadcast(1.0f);
  const R e = f32_exp<V>(V::neg(V::abs(x)));
  return V::div(V::select(V::lt(x, V::zero()), e, one), V::add(one, e));
}

}  // namespace pyengine::kernels
