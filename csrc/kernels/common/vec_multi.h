// MultiVec<V, N>: vector traits whose register is N registers of V, every operation applied to
// each of them in turn. A function written against the traits (f32_math.h) and instantiated on
// MultiVec<V, 4> computes four independent vectors with its instructions interleaved in program
// order: the out-of-order core then finds four ready instructions wherever one chain waits on a
// 4-cycle FMA, instead of needing a window wide enough to reach the next vector's chain. Each
// lane goes through exactly the operations of V, so the results are the same bits.
#pragma once

namespace pyengine::kernels {

template <class V, int N>
struct MultiVec {
  struct Reg {
    typename V::Reg v[N];
  };
  struct Mask {
    typename V::Mask m[N];
  };
  static constexpr int kWidth = N * V::kWidth;

  template <class F>
  static inline Reg each(F f) {
    Reg out;
    for (int i = 0; i < N; ++i) out.v[i] = f(i);
    return out;
  }

  static inline Reg load(const float* p) {
    return each([&](int i) { return V::load(p + i * V::kWidth); });
  }
  static inline void store(float* p, const Reg& x) {
    for (int i = 0; i < N; ++i) V::store(p + i * V::kWidth, x.v[i]);
  }
  static inline Reg zero() {
    return each([](int) { return V::zero(); });
  }
  static inline Reg broadcast(float c) {
    const typename V::Reg b = V::broadcast(c);
    return each([&](int) { return b; });
  }
  static inline Reg fmadd(const Reg& a, const Reg& b, const Reg& c) {
    return each([&](int i) { return V::fmadd(a.v[i], b.v[i], c.v[i]); });
  }
  static inline Reg fnmadd(const Reg& a, const Reg& b, const Reg& c) {
    return each([&](int i) { return V::fnmadd(a.v[i], b.v[i], c.v[i]); });
  }
  static inline Reg add(const Reg& a, const Reg& b) {
    return each([&](int i) { return V::add(a.v[i], b.v[i]); });
  }
  static inline Reg sub(const Reg& a, const Reg& b) {
    return each([&](int i) { return V::sub(a.v[i], b.v[i]); });
  }
  static inline Reg mul(const Reg& a, const Reg& b) {
    return each([&](int i) { return V::mul(a.v[i], b.v[i]); });
  }
  static inline Reg div(const Reg& a, const Reg& b) {
    return each([&](int i) { return V::div(a.v[i], b.v[i]); });
  }
  static inline Reg max(const Reg& a, const Reg& b) {
    return each([&](int i) { return V::max(a.v[i], b.v[i]); });
  }
  static inline Reg min(const Reg& a, const Reg& b) {
    return each([&](int i) { return V::min(a.v[i], b.v[i]); });
  }
  static inline Reg abs(const Reg& x) {
    return each([&](int i) { return V::abs(x.v[i]); });
  }
  static inline Reg neg(const Reg& x) {
    return each([&](int i) { return V::neg(x.v[i]); });
  }
  static inline Reg copysign(const Reg& mag, const Reg& sign) {
    return each([&](int i) { return V::copysign(mag.v[i], sign.v[i]); });
  }
  static inline Mask lt(const Reg& a, const Reg& b) {
    Mask out;
    for (int i = 0; i < N; ++i) out.m[i] = V::lt(a.v[i], b.v[i]);
    return out;
  }
  static inline Reg select(const Mask& m, const Reg& if_true, const Reg& if_false) {
    return each([&](int i) { return V::select(m.m[i], if_true.v[i], if_false.v[i]); });
  }
  static inline Reg ldexp(const Reg& p, const Reg& n) {
    return each([&](int i) { return V::ldexp(p.v[i], n.v[i]); });
  }
  static inline Reg ldexp_normal(const Reg& p, const Reg& n) {
    return each([&](int i) { return V::ldexp_normal(p.v[i], n.v[i]); });
  }
  static inline Reg recip(const Reg& d) {
    return each([&](int i) { return V::recip(d.v[i]); });
  }
};

}  // namespace pyengine::kernels
