// Machine-limit probes written against a vector-traits type V (compiled once per ISA level):
// peak FMA throughput and streaming-read bandwidth, the two roofs the benchmarks report against.
#pragma once
#include <cstddef>

#include "kernels/f32_gemm_kernels.h"

namespace pyengine::kernels {

// 12 independent chains cover FMA latency (4 cycles) times the FMA ports (2) with room to spare.
template <class V>
static double probe_fma_loop(long iters, float* sink) {
  constexpr int kChains = 12;
  typename V::Reg acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = V::broadcast(float(j));
  // acc = acc * x + y converges (|x| < 1), so no overflow however long it runs.
  const typename V::Reg x = V::broadcast(0.999f), y = V::broadcast(0.001f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = V::fmadd(acc[j], x, y);
  }
  for (int j = 1; j < kChains; ++j) acc[0] = V::add(acc[0], acc[j]);
  V::store_first(sink, acc[0], 1);
  return double(iters) * kChains * V::kWidth * 2.0;
}

// Sums n floats, n a multiple of 64; four accumulators so the adds never limit the loads.
template <class V>
static float probe_stream_sum(const float* p, size_t n) {
  constexpr int W = V::kWidth;
  typename V::Reg s0 = V::zero(), s1 = V::zero(), s2 = V::zero(), s3 = V::zero();
  for (size_t i = 0; i < n; i += 4 * W) {
    s0 = V::add(s0, V::load(p + i));
    s1 = V::add(s1, V::load(p + i + W));
    s2 = V::add(s2, V::load(p + i + 2 * W));
    s3 = V::add(s3, V::load(p + i + 3 * W));
  }
  s0 = V::add(V::add(s0, s1), V::add(s2, s3));
  float lanes[64];
  V::store(lanes, s0);
  float total = 0.f;
  for (int i = 0; i < W; ++i) total += lanes[i];
  return total;
}

}  // namespace pyengine::kernels
