// Vector transcendental functions written once against a vector-traits type V (see
// kernels/<isa>/vec_f32__<isa>.h) and compiled per ISA level with the kernels that use them.
#pragma once

namespace pyengine::kernels {

// e^x, relative error below 2 ulp over the fp32 range; x < -87.3 gives 0-ish (2^-126 scale),
// x > 88.7 is clamped (no inf). Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then a
// degree-6 minimax polynomial for e^r, scaled by 2^n.
template <class V>
static inline typename V::Reg f32_exp(typename V::Reg x) {
  using R = typename V::Reg;
  x = V::min(V::max(x, V::broadcast(-87.33654f)), V::broadcast(88.72283f));
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
  // n may reach 128 for x near the top clamp: scale in two steps to stay in range.
  const R half = V::round(V::mul(n, V::broadcast(0.5f)));
  return V::mul(V::mul(p, V::pow2n(half)), V::pow2n(V::sub(n, half)));
}

}  // namespace pyengine::kernels
