// 16-lane fp32 vector traits for the AVX-512 (F/BW/VL/DQ) level.
// Only included by translation units under kernels/avx512/, compiled with AVX-512 flags.
#pragma once
#include <cstdint>
// GCC 12 warns about the _mm512_undefined_ps() inside its own AVX-512 intrinsics once they are
// inlined deep enough (GCC bug 105593, fixed in GCC 13). The diagnostic is located in the
// intrinsics header, so silencing it while that header is read silences only this false alarm.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace pyengine::kernels::avx512 {

struct VecF32 {
  using Reg = __m512;
  using Mask = __mmask16;  // bit i set where lane i is true
  static constexpr int kWidth = 16;

  static inline Reg zero() { return _mm512_setzero_ps(); }
  static inline Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static inline Reg broadcast(float x) { return _mm512_set1_ps(x); }
  static inline Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  // c - a * b, one rounding.
  static inline Reg fnmadd(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static inline Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static inline Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static inline Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static inline Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static inline Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static inline Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static inline Reg abs(Reg x) { return _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x); }
  static inline Reg neg(Reg x) { return _mm512_xor_ps(_mm512_set1_ps(-0.0f), x); }
  // |mag| with the sign bit of sign.
  static inline Reg copysign(Reg mag, Reg sign) {
    const __m512 s = _mm512_set1_ps(-0.0f);
    return _mm512_or_ps(_mm512_andnot_ps(s, mag), _mm512_and_ps(s, sign));
  }
  static inline Mask lt(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  // Lanes [0, n) true, the rest false; 0 <= n <= kWidth.
  static inline Mask first_n(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static inline Reg select(Mask m, Reg if_true, Reg if_false) {
    return _mm512_mask_blend_ps(m, if_false, if_true);
  }
  // Lanes (1, 0, 3, 2, ...): swaps each even lane with the odd lane after it.
  static inline Reg swap_pairs(Reg x) { return _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)); }
  // Round to nearest integer (ties to even), as float.
  static inline Reg round(Reg x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // 2^n for integer-valued n in [-126, 127].
  static inline Reg pow2n(Reg n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  // p * 2^n for integer-valued n in [-150, 128], rounded once (subnormal results included;
  // vscalefps). NaN in p or n gives NaN.
  static inline Reg ldexp(Reg p, Reg n) { return _mm512_scalef_ps(p, n); }
  // p * 2^n where n in [-126, 127] and the result is a normal number: here the same vscalefps.
  static inline Reg ldexp_normal(Reg p, Reg n) { return _mm512_scalef_ps(p, n); }
  // 1 / d for normal d, within 0.6 ulp: the 14-bit vrcp14ps estimate r, then one Newton step
  // r + r (1 - d r) (relative error <= 2^-28 before its final rounding). Exact for powers of 2.
  static inline Reg recip(Reg d) {
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
  }
  static inline float reduce_add(Reg v) { return _mm512_reduce_add_ps(v); }
  static inline float reduce_max(Reg v) { return _mm512_reduce_max_ps(v); }
  static inline void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  // Lanes [0, n) only; the rest of memory is not touched (masked, no fault past the end).
  static inline Reg load_first(const float* p, int n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
  }
  static inline void store_first(float* p, Reg v, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
  }
  static inline void prefetch(const void* p) {
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
  }
  // Into L2 only: far-ahead streaming without evicting what L1 holds.
  static inline void prefetch_l2(const void* p) {
    _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
  }

  // ---- Added for attention (kernels/common/f32_attention.h) ----
  // Lane i = reduce_add(v[i]): kWidth horizontal sums at once. Two rounds fold four registers'
  // 128-bit quarters together (v[i], v[i + 8], v[i + 4], v[i + 12] end up in the quarters of
  // y[i]), then a 4x4 transpose folded into adds per quarter, then the quarters are put in order.
  static inline Reg reduce_add_each(const Reg (&v)[kWidth]) {
    Reg x[8], y[4];
    for (int i = 0; i < 8; ++i) {
      x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm512_shuffle_f32x4(v[i], v[i + 8], _MM_SHUFFLE(3, 2, 3, 2)));
    }
    for (int i = 0; i < 4; ++i) {
      y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[i], x[i + 4], _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(x[i], x[i + 4], _MM_SHUFFLE(3, 1, 3, 1)));
    }
    const Reg s01 = _mm512_add_ps(_mm512_unpacklo_ps(y[0], y[1]), _mm512_unpackhi_ps(y[0], y[1]));
    const Reg s23 = _mm512_add_ps(_mm512_unpacklo_ps(y[2], y[3]), _mm512_unpackhi_ps(y[2], y[3]));
    const Reg r = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                                _mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_shuffle_f32x4(r, r, _MM_SHUFFLE(3, 1, 2, 0));
  }
  // In place, x as a kWidth x kWidth matrix (x[i] its row i): lane j of x[i] <-> lane i of x[j].
  // Within each 128-bit quarter a 4x4 transpose (unpack, then shuffle), which leaves quarter L of
  // x[4 i + k] holding rows 4 i .. 4 i + 3 of column 4 L + k; two rounds of quarter shuffles then
  // gather the four quarters of each column. 64 shuffles.
  static inline void transpose(Reg (&x)[kWidth]) {
    Reg t[16];
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(x[2 * i], x[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(x[2 * i], x[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
      x[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      x[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      x[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      x[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int k = 0; k < 4; ++k) {
      const Reg u0 = _mm512_shuffle_f32x4(x[k], x[4 + k], 0x88);  // quarters 0, 2 of each
      const Reg u1 = _mm512_shuffle_f32x4(x[k], x[4 + k], 0xDD);  // quarters 1, 3 of each
      const Reg u2 = _mm512_shuffle_f32x4(x[8 + k], x[12 + k], 0x88);
      const Reg u3 = _mm512_shuffle_f32x4(x[8 + k], x[12 + k], 0xDD);
      t[k] = _mm512_shuffle_f32x4(u0, u2, 0x88);
      t[4 + k] = _mm512_shuffle_f32x4(u1, u3, 0x88);
      t[8 + k] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
      t[12 + k] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
    for (int i = 0; i < 16; ++i) x[i] = t[i];
  }
  // ---- Added for bf16 weights (kernels/common/bf16_panel.h) ----
  // kWidth (k, k + 1) pairs of bf16 at p, one 32-bit word per column (k in the low half), as
  // fp32: a bf16 is the top half of the fp32 with the same bits, so this is exact.
  static inline void load_bf16_pairs(const uint16_t* p, Reg& even, Reg& odd) {
    const __m512i w = _mm512_loadu_si512(p);
    even = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    odd = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(int(0xFFFF0000u))));
  }
};

}  // namespace pyengine::kernels::avx512
