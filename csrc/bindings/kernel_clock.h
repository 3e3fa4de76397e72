// Time spent inside native kernels, summed over all calls from Python: the benchmarks subtract
// it from wall time to report the Python overhead of a decode step.
#pragma once
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace pyengine::bindings {

inline std::atomic<int64_t>& kernel_clock_ns() {
  static std::atomic<int64_t> ns{0};
  return ns;
}

// Releases the GIL for the scope and adds the scope's duration to kernel_clock_ns().
class KernelScope {
 public:
  KernelScope() : start_(std::chrono::steady_clock::now()) {}
  ~KernelScope() {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start_)
                        .count();
    kernel_clock_ns().fetch_add(ns, std::memory_order_relaxed);
  }
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;

 private:
  pybind11::gil_scoped_release release_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace pyengine::bindings
