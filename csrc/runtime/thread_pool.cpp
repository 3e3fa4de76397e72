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
    // Join the job only while it is open; a worker the OS scheduled late finds it closed and
    // goes back to waiting, so the dispatcher never waits on a thread that never showed up.
    if (job_state_.fetch_add(2, std::memory_order_acq_rel) & 1) run_tasks();
    job_state_.fetch_sub(2, std::memory_order_release);
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
  job_state_.fetch_or(1, std::memory_order_release);  // open: publishes the job above
  generation_.fetch_add(1);
  if (sleeping_workers_.load() > 0) generation_.notify_all();
  run_tasks();
  // Close, then wait only for the workers that joined (they may still be inside a task).
  job_state_.fetch_and(~1, std::memory_order_acq_rel);
  while ((job_state_.load(std::memory_order_acquire) >> 1) != 0) _mm_pause();
}

namespace {
// Busy work the optimizer cannot drop: about `iters` dependent integer steps.
uint64_t spin_work(uint64_t iters, uint64_t seed) {
  uint64_t x = seed | 1;
  for (uint64_t i = 0; i < iters; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}
}  // namespace

double measure_dispatch_overhead_ns(ThreadPool& pool, int iterations) {
  // One task per thread, each ~2 us of work: with perfect dispatch a call takes as long as one
  // task alone. The overhead is the difference: waking or reaching the workers, handing out
  // tasks, waiting for the last one to finish.
  using clock = std::chrono::steady_clock;
  std::atomic<uint64_t> sink{0};
  uint64_t iters = 1000;
  auto t0 = clock::now();
  sink += spin_work(iters, 1);
  double ns = std::chrono::duration<double, std::nano>(clock::now() - t0).count();
  iters = uint64_t(double(iters) * 2000.0 / (ns > 1 ? ns : 1.0)) + 1;
  const int64_t tasks = pool.num_threads();
  auto task = [&](int64_t i) { sink += spin_work(iters, uint64_t(i) + 2); };
  auto time_ns = [&](auto&& body) {
    for (int i = 0; i < 100; ++i) body();  // warm: workers spinning, caches hot
    const auto start = clock::now();
    for (int i = 0; i < iterations; ++i) body();
    return std::chrono::duration<double, std::nano>(clock::now() - start).count() / iterations;
  };
  const double alone = time_ns([&] { task(0); });
  const double parallel = time_ns([&] { pool.parallel_for(tasks, task); });
  return parallel - alone;
}

}  // namespace pyengine::runtime
