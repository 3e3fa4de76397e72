// 16-lane fp32 vector traits for the AVX-512 (F/BW/VL/DQ) level.
// Only included by translation units under kernels/avx512/, compiled with AVX-512 flags.
#pragma once
#include <immintrin.h>

namespace pyengine::kernels::avx512 {

struct VecF32 {
  using Reg = __m512;
  static constexpr int kWidth = 16;

  static inline Reg zero() { return _mm512_setzero_ps(); }
  static inline Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static inline Reg broadcast(float x) { return _mm512_set1_ps(x); }
  static inline Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static inline Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static inline Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static inline Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static inline Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static inline Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static inline Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  // Round to nearest integer (ties to even), as float.
  static inline Reg round(Reg x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // 2^n for integer-valued n in [-126, 127].
  static inline Reg pow2n(Reg n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
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
};

}  // namespace pyengine::kernels::avx512
