// The machine's limits, measured: peak fp32 FMA throughput and streaming-read bandwidth, each
// on the pool's threads with the given ISA level's widest vectors, and the peak of the bf16
// matrix engine where the level has one.
#pragma once
#include "cpu/isa_level.h"

namespace pyengine::ops {

// GFLOP/s of independent FMA chains, all pool threads busy for about `seconds`.
double probe_peak_gflops(cpu::IsaLevel level, double seconds);
// GFLOP/s of bf16 tile products (AMX) on registers only, all pool threads busy for about
// `seconds`; 0 where the level has no matrix engine.
double probe_bf16_tile_peak_gflops(cpu::IsaLevel level, double seconds);
// GB/s reading a buffer of `bytes` (far larger than the caches), split across the pool's threads.
// The best of `repeats` passes.
double probe_read_bandwidth_gbs(cpu::IsaLevel level, size_t bytes, int repeats);

}  // namespace pyengine::ops
