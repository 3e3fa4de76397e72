// 4-lane fp32 vector traits for the baseline x86-64 level (SSE2, no FMA).
// Only included by translation units under kernels/generic/, compiled with baseline flags.
#pragma once
#include <emmintrin.h>

namespace pyengine::kernels::generic {

struct VecF32 {
  using Reg = __m128;
  static constexpr int kWidth = 4;

  static inline Reg zero() { return _mm_setzero_ps(); }
  static inline Reg load(const float* p) { return _mm_loadu_ps(p); }
  static inline Reg broadcast(float x) { return _mm_set1_ps(x); }
  // No FMA at this level: a separately rounded multiply and add.
  static inline Reg fmadd(Reg a, Reg b, Reg c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static inline Reg add(Reg a, Reg b) { return _mm_add_ps(a, b); }
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
};

}  // namespace pyengine::kernels::generic
