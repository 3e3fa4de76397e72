// The threading split of the row-wise ops (norms, softmax, activations, RoPE, embedding): whole
// rows go to threads, a row is never split, so every result is the same for any thread count.
#pragma once
#include <algorithm>
#include <cstdint>

#include "runtime/thread_pool.h"

namespace pyengine::ops {

// Below this many elements a job runs on the calling thread: a pool dispatch costs more than
// the work it would share.
inline constexpr int64_t kParallelMinElements = 32 * 1024;

// Calls fn(begin, end) on contiguous row ranges covering [0, rows) exactly once, each row being
// `row_elements` elements of work. Large jobs get a few ranges per pool thread (the pool hands
// them out dynamically, which evens out uneven progress), each still worth a dispatch.
template <class F>
void parallel_rows(int64_t rows, int64_t row_elements, F&& fn) {
  if (rows <= 0) return;
  auto& pool = runtime::ThreadPool::instance();
  const int64_t total = rows * std::max<int64_t>(row_elements, 1);
  const int64_t threads = pool.num_threads();
  if (threads == 1 || rows == 1 || total <= kParallelMinElements) {
    fn(int64_t(0), rows);
    return;
  }
  const int64_t tasks = std::min({rows, 4 * threads, total / (kParallelMinElements / 4)});
  const int64_t per_task = (rows + tasks - 1) / tasks;
  pool.parallel_for((rows + per_task - 1) / per_task,
                    [&](int64_t t) { fn(t * per_task, std::min(rows, (t + 1) * per_task)); });
}

// parallel_rows over a flat array of n elements cut into blocks of kBlock, a multiple of every
// vector width (only the array's last block has a tail): fn(begin, end) in elements.
template <class F>
void parallel_elements(int64_t n, F&& fn) {
  constexpr int64_t kBlock = 2048;
  parallel_rows((n + kBlock - 1) / kBlock, kBlock,
                [&](int64_t b0, int64_t b1) { fn(b0 * kBlock, std::min(n, b1 * kBlock)); });
}

}  // namespace pyengine::ops
