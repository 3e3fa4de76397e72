// 8-lane fp32 vector traits for the AVX2+FMA level.
// Only included by translation units under kernels/avx2/, compiled with AVX2/FMA flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace pyengine::kernels::avx2 {

struct VecF32 {
  using Reg = __m256;
  using Mask = __m256;  // all-ones lanes where true
  static constexpr int kWidth = 8;

  static inline Reg zero() { return _mm256_setzero_ps(); }
  static inline Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline Reg broadcast(float x) { return _mm256_set1_ps(x); }
  static inline Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  // c - a * b, one rounding.
  static inline Reg fnmadd(Reg a, Reg b, Reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static inline Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static inline Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static inline Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static inline Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static inline Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static inline Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static inline Reg abs(Reg x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static inline Reg neg(Reg x) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), x); }
  // |mag| with the sign bit of sign.
  static inline Reg copysign(Reg mag, Reg sign) {
    const __m256 s = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sign));
  }
  static inline Mask lt(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  // Lanes [0, n) true, the rest false; 0 <= n <= kWidth.
  static inline Mask first_n(int n) { return _mm256_castsi256_ps(first_lanes(n)); }
  static inline Reg select(Mask m, Reg if_true, Reg if_false) {
    return _mm256_blendv_ps(if_false, if_true, m);
  }
  // Lanes (1, 0, 3, 2, ...): swaps each even lane with the odd lane after it.
  static inline Reg swap_pairs(Reg x) { return _mm256_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)); }
  // Round to nearest integer (ties to even), as float.
  static inline Reg round(Reg x) {
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // 2^n for integer-valued n in [-126, 127].
  static inline Reg pow2n(Reg n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  // p * 2^n for integer-valued n in [-150, 128], rounded once: p 2^h (exact) times 2^(n - h),
  // h = floor(n / 2), both factors normal. Subnormal results included.
  static inline Reg ldexp(Reg p, Reg n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i h = _mm256_srai_epi32(ni, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2i(h)), pow2i(_mm256_sub_epi32(ni, h)));
  }
  // p * 2^n where n in [-126, 127] and the result is a normal number: one exact multiply.
  static inline Reg ldexp_normal(Reg p, Reg n) { return _mm256_mul_ps(p, pow2n(n)); }
  // 1 / d, correctly rounded (vrcpps's 12 bits would need two Newton steps to match).
  static inline Reg recip(Reg d) { return _mm256_div_ps(_mm256_set1_ps(1.0f), d); }
  // 2^k for int32 k in [-126, 127].
  static inline Reg pow2i(__m256i k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
  }
  static inline float reduce_add(Reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static inline float reduce_max(Reg v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static inline void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  // Lane i is active when mask lane i has its sign bit set: lanes [0, n).
  static inline __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline Reg load_first(const float* p, int n) {
    return _mm256_maskload_ps(p, first_lanes(n));
  }
  static inline void store_first(float* p, Reg v, int n) {
    _mm256_maskstore_ps(p, first_lanes(n), v);
  }
  static inline void prefetch(const void* p) {
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
  }
  // Into L2 only: far-ahead streaming without evicting what L1 holds.
  static inline void prefetch_l2(const void* p) {
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
  }

  // ---- Added for attention (kernels/common/f32_attention.h) ----
  // Lane i = reduce_add(v[i]): kWidth horizontal sums at once. Fold v[i] and v[i + 4] into the
  // two 128-bit halves of one register, then a 4x4 transpose folded into adds per half.
  static inline Reg reduce_add_each(const Reg (&v)[kWidth]) {
    Reg x[4];
    for (int i = 0; i < 4; ++i) {
      x[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[i], v[i + 4], 0x20),
                           _mm256_permute2f128_ps(v[i], v[i + 4], 0x31));
    }
    const Reg s01 = _mm256_add_ps(_mm256_unpacklo_ps(x[0], x[1]), _mm256_unpackhi_ps(x[0], x[1]));
    const Reg s23 = _mm256_add_ps(_mm256_unpacklo_ps(x[2], x[3]), _mm256_unpackhi_ps(x[2], x[3]));
    return _mm256_add_ps(_mm256_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm256_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // In place, x as a kWidth x kWidth matrix (x[i] its row i): lane j of x[i] <-> lane i of x[j].
  // A 4x4 transpose within each 128-bit half (unpack, then shuffle), then the halves swapped
  // into place. 24 shuffles.
  static inline void transpose(Reg (&x)[kWidth]) {
    Reg t[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(x[2 * i], x[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(x[2 * i], x[2 * i + 1]);
    }
    Reg s[8];
    for (int i = 0; i < 2; ++i) {
      s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int k = 0; k < 4; ++k) {
      x[k] = _mm256_permute2f128_ps(s[k], s[4 + k], 0x20);
      x[4 + k] = _mm256_permute2f128_ps(s[k], s[4 + k], 0x31);
    }
  }
  // ---- Added for bf16 weights (kernels/common/bf16_panel.h) ----
  // kWidth (k, k + 1) pairs of bf16 at p, one 32-bit word per column (k in the low half), as
  // fp32: a bf16 is the top half of the fp32 with the same bits, so this is exact.
  static inline void load_bf16_pairs(const uint16_t* p, Reg& even, Reg& odd) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    even = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    odd = _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(int(0xFFFF0000u))));
  }
};

}  // namespace pyengine::kernels::avx2
