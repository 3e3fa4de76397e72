#include "runtime/thread_pool.h"

#include <immintrin.h>
#include <sched.h>

#include <chrono>

namespace pyengine::runtime {
namespace {

// How long an idle worker spins before it blocks, and how often it checks the clock meanwhile.
constexpr auto kSpinTime = std::chrono::microseconds(500);
constexpr int kSpinsPerClockCheck = 64;

thread_local bool tls_inside_pool_task = false;

}  // namespace

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : int(hw);
}

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool(available_cpus());
  return pool;
}

ThreadPool::ThreadPool(int num_threads) { start_workers(num_threads < 1 ? 1 : num_threads); }

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(busy_);
  if (n == num_threads_) return;
  stop_workers();
  start_workers(n);
}

void ThreadPool::start_workers(int num_threads) {
  num_threads_ = num_threads;
  stopping_.store(false);
  workers_.reserve(num_threads - 1);
  // Workers start from the current generation: one read inside the new thread could already see
  // the next job's bump and so skip that job, leaving its dispatcher waiting forever.
  const uint32_t generation = generation_.load();
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this, generation] { worker_loop(generation); });
  }
}

void ThreadPool::stop_workers() {
  stopping_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  num_threads_ = 1;
}

void ThreadPool::run_tasks() {
  const bool was_inside = tls_inside_pool_task;
  tls_inside_pool_task = true;
  for (int64_t i = next_task_.fetch_add(1, std::memory_order_relaxed); i < n_tasks_;
       i = next_task_.fetch_add(1, std::memory_order_relaxed)) {
    fn_(ctx_, i);
  }
  tls_inside_pool_task = was_inside;
}

void ThreadPool::worker_loop(uint32_t seen) {
  while (true) {
    // Spin first: the next kernel usually follows within microseconds.
    uint32_t gen = generation_.load(std::memory_order_acquire);
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    while (gen == seen) {
      for (int s = 0; s < kSpinsPerClockCheck && gen == seen; ++s) {
        _mm_pause();
        gen = generation_.load(std::memory_order_acquire);
      }
      if (gen != seen || std::chrono::steady_clock::now() > spin_until) break;
    }
    if (gen == seen) {
      // Announce the sleep before re-checking, so a dispatcher that bumps the generation after
      // our check is sure to see sleeping_workers_ > 0 and notify (both seq_cst).
      sleeping_workers_.fetch_add(1);
      generation_.wait(seen);
      sleeping_workers_.fetch_sub(1);
      gen = generation_.load(std::memory_order_acquire);
      if (gen == seen) continue;  // spurious wake-up
    }
    seen = gen;
    if (stopping_.load()) return;
    run_tasks();
    pending_workers_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int64_t n_tasks, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  std::unique_lock<std::mutex> lock(busy_, std::defer_lock);
  if (n_tasks == 1 || num_threads_ == 1 || tls_inside_pool_task || !lock.try_lock()) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(ctx, i);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  n_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  pending_workers_.store(int(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: publishes the job above
  if (sleeping_workers_.load() > 0) generation_.notify_all();
  run_tasks();
  while (pending_workers_.load(std::memory_order_acquire) != 0) _mm_pause();
}

double measure_dispatch_overhead_ns(ThreadPool& pool, int iterations) {
  auto noop = [](int64_t) {};
  const int64_t tasks = pool.num_threads();
  for (int i = 0; i < 100; ++i) pool.parallel_for(tasks, noop);  // warm: workers spinning
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) pool.parallel_for(tasks, noop);
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / iterations;
}

}  // namespace pyengine::runtime
