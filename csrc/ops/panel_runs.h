// How the few-row (GEMV) drivers split a packed weight's panels among the pool's threads.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ops/int_math.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {

// Calls each_panel(j) for j in [0, panels): about 4 tasks per thread (balance without tiny
// tasks), each a contiguous run of panels, so every thread streams its part of the weights once.
template <class EachPanel>
void parallel_panel_runs(int64_t panels, runtime::ThreadPool& pool, EachPanel&& each_panel) {
  const int64_t tasks = std::min<int64_t>(panels, 4 * int64_t(pool.num_threads()));
  const int64_t per_task = ceil_div(panels, tasks);
  pool.parallel_for(ceil_div(panels, per_task), [&](int64_t t) {
    const int64_t end = std::min(panels, (t + 1) * per_task);
    for (int64_t j = t * per_task; j < end; ++j) each_panel(j);
  });
}

}  // namespace pyengine::ops
