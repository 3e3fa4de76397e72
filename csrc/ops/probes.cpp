#include "ops/probes.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "cpu/by_level.h"
#include "kernels/f32_gemm_kernels.h"
#include "ops/bf16_gemm.h"
#include "runtime/aligned_buffer.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {
namespace {

const kernels::ProbeKernels& probe_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::probe_kernels, &kernels::avx2::probe_kernels,
                       &kernels::avx512::probe_kernels, /*amx=*/nullptr);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// GFLOP/s of `loop` (iterations -> flops done) on every pool thread at once, for about `seconds`.
template <class Loop>
double peak_on_all_threads(Loop loop, double seconds) {
  auto& pool = runtime::ThreadPool::instance();
  const int threads = pool.num_threads();
  // Calibrate the iteration count on one thread, then run it on all at once.
  long iters = 1 << 16;
  auto t0 = std::chrono::steady_clock::now();
  loop(iters, 0);
  const double calib = std::max(1e-6, seconds_since(t0));
  iters = std::max<long>(iters, long(iters * seconds / calib));
  std::vector<double> flops(size_t(threads), 0.0);
  t0 = std::chrono::steady_clock::now();
  pool.parallel_for(threads, [&](int64_t t) { flops[t] = loop(iters, t); });
  const double elapsed = seconds_since(t0);
  double total = 0.0;
  for (double f : flops) total += f;
  return total / elapsed * 1e-9;
}

}  // namespace

double probe_peak_gflops(cpu::IsaLevel level, double seconds) {
  const auto& pk = probe_kernels(level);
  const int threads = runtime::ThreadPool::instance().num_threads();
  std::vector<float> sinks(size_t(threads) * 64);
  return peak_on_all_threads(
      [&](long iters, int64_t t) { return pk.fma_loop(iters, &sinks[t * 64]); }, seconds);
}

double probe_bf16_tile_peak_gflops(cpu::IsaLevel level, double seconds) {
  const kernels::Bf16TileKernels* tiles = bf16_gemm_kernels(level).tiles;
  if (tiles == nullptr) return 0.0;
  // The loop does ~65k flops per iteration: start the calibration smaller.
  return peak_on_all_threads([&](long iters, int64_t) { return tiles->peak_loop(iters / 16); },
                             seconds);
}

double probe_read_bandwidth_gbs(cpu::IsaLevel level, size_t bytes, int repeats) {
  const auto& pk = probe_kernels(level);
  auto& pool = runtime::ThreadPool::instance();
  const int threads = pool.num_threads();
  // Each thread owns (and first touches) one contiguous slice, a multiple of 64 floats.
  const size_t per_thread = std::max<size_t>(64, bytes / sizeof(float) / threads / 64 * 64);
  runtime::AlignedBuffer buf(per_thread * threads);
  pool.parallel_for(threads, [&](int64_t t) {
    std::memset(buf.data() + t * per_thread, 0, per_thread * sizeof(float));
  });
  std::vector<float> sums(static_cast<size_t>(threads));
  double best = 0.0;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(threads, [&](int64_t t) {
      sums[t] = pk.stream_sum(buf.data() + t * per_thread, per_thread);
    });
    const double elapsed = seconds_since(t0);
    best = std::max(best, double(per_thread * threads * sizeof(float)) / elapsed * 1e-9);
  }
  return best;
}

}  // namespace pyengine::ops
