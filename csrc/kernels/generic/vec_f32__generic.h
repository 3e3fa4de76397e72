// 4-lane fp32 vector traits for the baseline x86-64 level (SSE2, no FMA).
// Only included by translation units under kernels/generic/, compiled with baseline flags.
#pragma once
#include <emmintrin.h>

#include <cstdint>

namespace pyengine::kernels::generic {

struct VecF32 {
  using Reg = __m128;
  using Mask = __m128;  // all-ones lanes where true
  static constexpr int kWidth = 4;

  static inline Reg zero() { return _mm_setzero_ps(); }
  static inline Reg load(const float* p) { return _mm_loadu_ps(p); }
  static inline Reg broadcast(float x) { return _mm_set1_ps(x); }
  // No FMA at this level: a separately rounded multiply and add.
  static inline Reg fmadd(Reg a, Reg b, Reg c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  // c - a * b, likewise unfused.
  static inline Reg fnmadd(Reg a, Reg b, Reg c) { return _mm_sub_ps(c, _mm_mul_ps(a, b)); }
  static inline Reg add(Reg a, Reg b) { return _mm_add_ps(a, b); }
  static inline Reg sub(Reg a, Reg b) { return _mm_sub_ps(a, b); }
  static inline Reg mul(Reg a, Reg b) { return _mm_mul_ps(a, b); }
  static inline Reg div(Reg a, Reg b) { return _mm_div_ps(a, b); }
  static inline Reg max(Reg a, Reg b) { return _mm_max_ps(a, b); }
  static inline Reg min(Reg a, Reg b) { return _mm_min_ps(a, b); }
  static inline Reg abs(Reg x) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), x); }
  static inline Reg neg(Reg x) { return _mm_xor_ps(_mm_set1_ps(-0.0f), x); }
  // |mag| with the sign bit of sign.
  static inline Reg copysign(Reg mag, Reg sign) {
    const __m128 s = _mm_set1_ps(-0.0f);
    return _mm_or_ps(_mm_andnot_ps(s, mag), _mm_and_ps(s, sign));
  }
  static inline Mask lt(Reg a, Reg b) { return _mm_cmplt_ps(a, b); }
  // Lanes [0, n) true, the rest false; 0 <= n <= kWidth.
  static inline Mask first_n(int n) {
    return _mm_castsi128_ps(_mm_cmplt_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(n)));
  }
  static inline Reg select(Mask m, Reg if_true, Reg if_false) {
    return _mm_or_ps(_mm_and_ps(m, if_true), _mm_andnot_ps(m, if_false));
  }
  // Lanes (1, 0, 3, 2): swaps each even lane with the odd lane after it.
  static inline Reg swap_pairs(Reg x) { return _mm_shuffle_ps(x, x, _MM_SHUFFLE(2, 3, 0, 1)); }
  // Round to nearest integer (ties to even, the default MXCSR mode), as float; |x| < 2^31.
  static inline Reg round(Reg x) { return _mm_cvtepi32_ps(_mm_cvtps_epi32(x)); }
  // 2^n for integer-valued n in [-126, 127].
  static inline Reg pow2n(Reg n) {
    const __m128i e = _mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127));
    return _mm_castsi128_ps(_mm_slli_epi32(e, 23));
  }
  // p * 2^n for integer-valued n in [-150, 128], rounded once: p 2^h (exact) times 2^(n - h),
  // h = floor(n / 2), both factors normal. Subnormal results included.
  static inline Reg ldexp(Reg p, Reg n) {
    const __m128i ni = _mm_cvtps_epi32(n);
    const __m128i h = _mm_srai_epi32(ni, 1);
    return _mm_mul_ps(_mm_mul_ps(p, pow2i(h)), pow2i(_mm_sub_epi32(ni, h)));
  }
  // p * 2^n where n in [-126, 127] and the result is a normal number: one exact multiply.
  static inline Reg ldexp_normal(Reg p, Reg n) { return _mm_mul_ps(p, pow2n(n)); }
  // 1 / d, correctly rounded.
  static inline Reg recip(Reg d) { return _mm_div_ps(_mm_set1_ps(1.0f), d); }
  // 2^k for int32 k in [-126, 127].
  static inline Reg pow2i(__m128i k) {
    return _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(k, _mm_set1_epi32(127)), 23));
  }
  static inline float reduce_add(Reg v) {
    __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static inline float reduce_max(Reg v) {
    __m128 s = _mm_max_ps(v, _mm_movehl_ps(v, v));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static inline void store(float* p, Reg v) { _mm_storeu_ps(p, v); }
  // SSE2 has no masked moves: go through a register-sized spill, touching only lanes [0, n).
  static inline Reg load_first(const float* p, int n) {
    alignas(16) float tmp[4] = {0.f, 0.f, 0.f, 0.f};
    for (int i = 0; i < n; ++i) tmp[i] = p[i];
    return _mm_load_ps(tmp);
  }
  static inline void store_first(float* p, Reg v, int n) {
    alignas(16) float tmp[4];
    _mm_store_ps(tmp, v);
    for (int i = 0; i < n; ++i) p[i] = tmp[i];
  }
  static inline void prefetch(const void* p) {
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
  }
  // Into L2 only: far-ahead streaming without evicting what L1 holds.
  static inline void prefetch_l2(const void* p) {
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
  }

  // ---- Added for attention (kernels/common/f32_attention.h) ----
  // Lane i = reduce_add(v[i]): kWidth horizontal sums at once (a 4x4 transpose folded into adds).
  static inline Reg reduce_add_each(const Reg (&v)[kWidth]) {
    const Reg s01 = _mm_add_ps(_mm_unpacklo_ps(v[0], v[1]), _mm_unpackhi_ps(v[0], v[1]));
    const Reg s23 = _mm_add_ps(_mm_unpacklo_ps(v[2], v[3]), _mm_unpackhi_ps(v[2], v[3]));
    return _mm_add_ps(_mm_movelh_ps(s01, s23), _mm_movehl_ps(s23, s01));
  }
  // In place, x as a kWidth x kWidth matrix (x[i] its row i): lane j of x[i] <-> lane i of x[j].
  static inline void transpose(Reg (&x)[kWidth]) { _MM_TRANSPOSE4_PS(x[0], x[1], x[2], x[3]); }
  // ---- Added for bf16 weights (kernels/common/bf16_panel.h) ----
  // kWidth (k, k + 1) pairs of bf16 at p, one 32-bit word per column (k in the low half), as
  // fp32: a bf16 is the top half of the fp32 with the same bits, so this is exact.
  static inline void load_bf16_pairs(const uint16_t* p, Reg& even, Reg& odd) {
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    even = _mm_castsi128_ps(_mm_slli_epi32(w, 16));
    odd = _mm_castsi128_ps(_mm_and_si128(w, _mm_set1_epi32(int(0xFFFF0000u))));
  }
};

}  // namespace pyengine::kernels::generic
