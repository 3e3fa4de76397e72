// Vector transcendental functions written once against a vector-traits type V (see
// kernels/<isa>/vec_f32__<isa>.h) and compiled per ISA level with the kernels that use them.
//
// Accuracy against float64 libm over every fp32 input (tools/f32_math_accuracy.cpp), on each
// level: generic (no FMA), avx2 and avx512. The claim, then the largest error measured:
//   f32_exp           < 1.3 ulp (1.01); subnormal results within 1 * 2^-149 absolute (0.75)
//   f32_tanh          < 1.1 ulp everywhere (1.05 with FMA, 1.08 generic)
//   f32_erf           < 1.3 ulp with FMA (1.21), < 1.34 ulp generic (1.334 near 0.92: the
//                     small-|x| polynomial's unfused roundings); < 8e-8 absolute
//   f32_sigmoid       < 3 ulp for x > -87.3 (2.83); below, within 2^-149 absolute (0.75)
//   f32_x_normal_cdf  < 2 ulp for x >= 0 (1.62 with FMA, 1.92 generic); for x < 0 within
//                     1 ulp of |x| (0.77, 0.96): see there
// All return NaN for NaN and never produce inf for a finite input. The polynomial coefficients
// are weighted minimax fits (float64 Lawson iterations on Chebyshev nodes), rounded to fp32.
//
// Speed: no branches, at most one reciprocal (V::recip: vrcp14ps and a Newton step on avx512),
// each function a few dozen vector instructions, mostly FMAs. The kernels run them on
// MultiVec<V, 4> (vec_multi.h) so that four independent dependency chains interleave.
#pragma once

namespace pyengine::kernels {
namespace f32_math_detail {

// e^x for x in [-104, 88.73] (callers clamp). Range reduction x = n ln2 + r, |r| <= ln2/2:
// n = round(x log2e) by adding and subtracting 1.5 * 2^23 (the sum's rounding is the
// round-to-nearest), r by Cody-Waite with ln2 split in two (n * 0.693359375 is exact). Then
// e^r = 1 + (r + r^2 q(r)), q of degree 4 (a degree-6 minimax fit, relative error 3.1e-9): the
// parenthesis is at most 0.42 in magnitude, so its roundings shrink before the final add, which
// rounds once (< 1 ulp with or without FMA). 2^n by V::ldexp (vscalefps on avx512). kNormal:
// the caller guarantees a normal result (x >= -87.3), which lets the avx2 and generic levels
// scale with one exact multiply.
template <class V, bool kNormal = false>
static inline typename V::Reg exp_clamped(typename V::Reg x) {
  using R = typename V::Reg;
  const R shifter = V::broadcast(12582912.0f);  // 1.5 * 2^23
  const R n = V::sub(V::fmadd(x, V::broadcast(1.44269504088896341f), shifter), shifter);
  R r = V::fmadd(n, V::broadcast(-0.693359375f), x);
  r = V::fmadd(n, V::broadcast(2.12194440e-4f), r);
  R q = V::broadcast(1.3814308913e-03f);
  q = V::fmadd(q, r, V::broadcast(8.3688562736e-03f));
  q = V::fmadd(q, r, V::broadcast(4.1668400168e-02f));
  q = V::fmadd(q, r, V::broadcast(1.6666519642e-01f));
  q = V::fmadd(q, r, V::broadcast(4.9999994040e-01f));
  const R p = V::add(V::fmadd(q, V::mul(r, r), r), V::broadcast(1.0f));
  if constexpr (kNormal) {
    return V::ldexp_normal(p, n);
  } else {
    return V::ldexp(p, n);
  }
}

// erf(t) = t + t P(t^2) for |t| < 0.921875, P of degree 5 (P(0) = 2/sqrt(pi) - 1); the
// coefficients of P, highest first.
inline constexpr float kErfSmall[6] = {-5.990891368e-04f, 4.993189126e-03f,  -2.676662430e-02f,
                                       1.128181666e-01f,  -3.761249483e-01f, 1.283791512e-01f};
// erfc(t) = e^{Q(t)} for t in [0.921875, 4], Q of degree 6 fitted to log(erfc(t)) with weight
// erfc (the absolute error that reaches erf); coefficients highest first.
inline constexpr float kErfcLog[7] = {1.947337878e-04f,  -3.031593980e-03f, 2.218137309e-02f,
                                      -1.038388610e-01f, -6.372858286e-01f, -1.127615452e+00f,
                                      -2.099207777e-04f};

}  // namespace f32_math_detail

// e^x. Clamped to [-104, 88.72283]: x < -87.3 gives the correctly rounded subnormal (softmax
// tails, silu(-100) stay accurate), x < -103.97 gives 0, and x > 88.72 gives e^88.72 (no inf).
// The clamp takes x as max's and min's *second* operand, which is the one x86 returns when
// either is NaN: NaN propagates.
template <class V>
static inline typename V::Reg f32_exp(typename V::Reg x) {
  x = V::min(V::broadcast(88.72283f), V::max(V::broadcast(-104.0f), x));
  return f32_math_detail::exp_clamped<V>(x);
}

// tanh(x). |x| < 0.875: x + x s P(s), s = x^2, P of degree 6 (no cancellation near 0).
// Otherwise sign(x) (1 - 2 / (e + 1)), e = e^{2|x|} >= 5.7: the subtracted term is at most 0.3,
// so the roundings of e + 1 and of the reciprocal reach the result shrunk by that factor.
// |x| is clamped to 9.5, past which tanh rounds to +-1. Both branches are computed and the lane
// picks one.
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
  // min's second operand is the one returned for NaN (see f32_exp).
  const R e = f32_math_detail::exp_clamped<V, true>(V::min(V::broadcast(19.0f), V::add(t, t)));
  const R big = V::fnmadd(V::broadcast(2.0f), V::recip(V::add(e, one)), one);
  return V::select(V::lt(t, V::broadcast(0.875f)), small, V::copysign(big, x));
}

// erf(x). |x| < 0.921875: x + x P(x^2). Otherwise sign(x) (1 - e^{Q(|x|)}), Q fitted to
// log(erfc) (see kErfcLog); |x| is clamped to 4, past which erf rounds to +-1 in fp32.
template <class V>
static inline typename V::Reg f32_erf(typename V::Reg x) {
  using R = typename V::Reg;
  namespace d = f32_math_detail;
  const R t = V::min(V::broadcast(4.0f), V::abs(x));  // NaN stays NaN (see f32_exp)
  const R s = V::mul(t, t);
  R p = V::broadcast(d::kErfSmall[0]);
  for (int i = 1; i < 6; ++i) p = V::fmadd(p, s, V::broadcast(d::kErfSmall[i]));
  const R small = V::fmadd(x, p, x);
  R q = V::broadcast(d::kErfcLog[0]);
  for (int i = 1; i < 7; ++i) q = V::fmadd(q, t, V::broadcast(d::kErfcLog[i]));
  const R big = V::sub(V::broadcast(1.0f), d::exp_clamped<V, true>(q));  // q in [-17.7, 0]
  return V::select(V::lt(t, V::broadcast(0.921875f)), small, V::copysign(big, x));
}

// x Phi(x) = x (1 + erf(x / sqrt(2))) / 2 (exact GELU; Phi is the standard normal CDF), from
// the same two fits as f32_erf, rewritten for |x| = sqrt(2) t (coefficients rescaled in float64,
// then rounded):
//   |x| < 1.3037 (t < 0.921875): x / 2 + x^2 P'(x^2), P'(u) = (1 + P(u / 2)) / (2 sqrt(2)).
//   otherwise c = erfc(t) / 2 = 2^{Q'(|x|)}, Q' = (Q(|x| / sqrt(2)) - ln 2) log2(e), and
//   x Phi(x) = max(x, 0) - |x| c: x c for x < 0, x - x c for x > 0. The lower tail is x c
//   itself, not x (1 - (1 - c)): no cancellation. |x| is clamped to 4 sqrt(2), beyond which
//   c is taken as 0 (c(4 sqrt(2)) = 7.7e-9: x Phi(x) rounds to x above, and is below
//   4.4e-8 in magnitude under -4 sqrt(2)).
// 2^Q' by n = round(Q'), f = Q' - n (exact), a degree-5 minimax polynomial for 2^f (relative
// error 9.2e-8, which reaches x Phi(x) for x > 0 as c / (1 - c) <= 0.11 times that) and
// V::ldexp_normal (Q' is in [-27, -1]). About 30 vector instructions, no division.
// Measured: < 2 ulp for x >= 0. For x < 0 the error is below 1 ulp of |x| (the op tests' bound
// for gelu, whose 1 + erf cancels there); relative to x Phi(x) it is < 8 ulp on [-1.3, 0],
// < 12 on [-2, -1.3], then grows as Q's fit (weighted for erf) loosens: < 100 ulp at -4.
template <class V>
static inline typename V::Reg f32_x_normal_cdf(typename V::Reg x) {
  using R = typename V::Reg;
  namespace d = f32_math_detail;
  constexpr double kRsqrt2 = 0.70710678118654752;  // 1 / sqrt(2)
  constexpr double kLog2e = 1.4426950408889634;
  const R small_limit = V::broadcast(float(0.921875 / kRsqrt2));  // 1.3037
  const R tail_limit = V::broadcast(float(4.0 / kRsqrt2));        // 5.6569
  const R ax = V::abs(x);
  const R xx = V::mul(x, x);
  // P'(u) = sum_i c_i (u / 2)^i / (2 sqrt(2)), plus 1 / (2 sqrt(2)) in the constant term.
  R p = V::broadcast(float(kRsqrt2 / 2 * d::kErfSmall[0] / 32));
  for (int i = 1; i < 6; ++i) {
    const double c = d::kErfSmall[i] + (i == 5 ? 1.0 : 0.0);
    p = V::fmadd(p, xx, V::broadcast(float(kRsqrt2 / 2 * c / double(1 << (5 - i)))));
  }
  const R small = V::fmadd(xx, p, V::mul(x, V::broadcast(0.5f)));
  // Q'(a) = (sum_i k_i (a / sqrt(2))^i - ln 2) log2(e), on a = min(|x|, 4 sqrt(2)).
  const R a = V::min(tail_limit, ax);  // NaN stays NaN (see f32_exp)
  double scale = kLog2e;
  for (int i = 0; i < 6; ++i) scale *= kRsqrt2;
  R q = V::broadcast(float(d::kErfcLog[0] * scale));
  for (int i = 1; i < 7; ++i) {
    scale /= kRsqrt2;
    q = V::fmadd(q, a, V::broadcast(float(d::kErfcLog[i] * scale - (i == 6 ? 1.0 : 0.0))));
  }
  const R shifter = V::broadcast(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const R n = V::sub(V::add(q, shifter), shifter);
  const R f = V::sub(q, n);
  R e = V::broadcast(1.3264591107e-03f);
  e = V::fmadd(e, f, V::broadcast(9.6716191620e-03f));
  e = V::fmadd(e, f, V::broadcast(5.5507350713e-02f));
  e = V::fmadd(e, f, V::broadcast(2.4022240937e-01f));
  e = V::fmadd(e, f, V::broadcast(6.9314700365e-01f));
  e = V::fmadd(e, f, V::broadcast(1.0f));
  const R c = V::select(V::lt(ax, tail_limit), V::ldexp_normal(e, n), V::zero());
  // a, not |x|: inf * 0 would be NaN. (max(x, 0) drops a NaN x, but a carries it.)
  const R big = V::fnmadd(a, c, V::max(x, V::zero()));
  return V::select(V::lt(ax, small_limit), small, big);
}

// 1 / (1 + e^-x), from e = e^{-|x|} <= 1 so nothing overflows: 1 / (1 + e) for x >= 0 and
// e / (1 + e) for x < 0 (accurate for very negative x, down to the subnormals). One V::recip.
template <class V>
static inline typename V::Reg f32_sigmoid(typename V::Reg x) {
  using R = typename V::Reg;
  const R one = V::broadcast(1.0f);
  // max's second operand is the one returned for NaN (see f32_exp).
  const R e = f32_math_detail::exp_clamped<V>(V::max(V::broadcast(-104.0f), V::neg(V::abs(x))));
  return V::mul(V::select(V::lt(x, V::zero()), e, one), V::recip(V::add(one, e)));
}

}  // namespace pyengine::kernels
