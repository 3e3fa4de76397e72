#include "ops/f32_embedding.h"

#include <cstring>

#include "ops/parallel_rows.h"

namespace pyengine::ops {

template <class Index>
void f32_embedding(int64_t n_ids, const Index* ids, const float* table, int64_t dim, float* out) {
  if (dim <= 0) return;
  parallel_rows(n_ids, dim, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      std::memcpy(out + i * dim, table + int64_t(ids[i]) * dim, size_t(dim) * sizeof(float));
    }
  });
}

template void f32_embedding<int32_t>(int64_t, const int32_t*, const float*, int64_t, float*);
template void f32_embedding<int64_t>(int64_t, const int64_t*, const float*, int64_t, float*);

}  // namespace pyengine::ops
