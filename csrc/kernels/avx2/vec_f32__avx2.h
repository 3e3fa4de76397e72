// 8-lane fp32 vector traits for the AVX2+FMA level.
// Only included by translation units under kernels/avx2/, compiled with AVX2/FMA flags.
#pragma once
#include <immintrin.h>

namespace pyengine::kernels::avx2 {

struct VecF32 {
  using Reg = __m256;
  static constexpr int kWidth = 8;

  static inline Reg zero() { return _mm256_setzero_ps(); }
  static inline Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static inline Reg broadcast(float x) { return _mm256_set1_ps(x); }
  static inline Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static inline Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
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
};

}  // namespace pyengine::kernels::avx2
