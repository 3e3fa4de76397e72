// The extension's persistent thread pool. Kernels split their *outputs* into tasks, so results
// never depend on the thread count (no cross-thread reductions).
//
// Dispatch cost matters more than anything here: decode runs hundreds of small kernels per
// token. Workers therefore spin for a short while after each job (waking a sleeping thread costs
// tens of microseconds) and only then block on a futex (std::atomic::wait).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace pyengine::runtime {

class ThreadPool {
 public:
  using TaskFn = void (*)(void* ctx, int64_t task);

  // The process-wide pool, sized to the CPUs this process may run on.
  static ThreadPool& instance();

  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that share a parallel_for, the calling thread included. n >= 1.
  void set_num_threads(int n);
  int num_threads() const { return num_threads_; }

  // Calls fn(i) for every i in [0, n_tasks), spread over the pool; returns when all are done.
  // Re-entrant and thread safe: a call made while the pool is busy (another Python thread, or
  // from inside a task) runs its tasks on the calling thread instead of waiting.
  template <class F>
  void parallel_for(int64_t n_tasks, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run(
        n_tasks, [](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

  void run(int64_t n_tasks, TaskFn fn, void* ctx);

 private:
  void start_workers(int num_threads);
  void stop_workers();
  void worker_loop(uint32_t seen);
  void run_tasks();

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the thread whose job the workers are running

  // The current job. Written by the dispatching thread before it bumps generation_.
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_tasks_ = 0;
  alignas(64) std::atomic<int64_t> next_task_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
  // Bit 0: the job is open to joiners; bits 1..: workers inside it (2 per worker).
  alignas(64) std::atomic<int> job_state_{0};
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> stopping_{false};
};

// Logical CPUs in this process's affinity mask.
int available_cpus();

// Nanoseconds a parallel_for of one ~2 us task per thread takes beyond one such task alone:
// the cost of dispatching work to the pool and waiting for it (mean over `iterations`).
double measure_dispatch_overhead_ns(ThreadPool& pool, int iterations);

}  // namespace pyengine::runtime
