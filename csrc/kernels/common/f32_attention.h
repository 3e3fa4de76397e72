// fp32 attention kernels (see kernels/f32_attention_kernels.h for the contracts), written once
// against a vector-traits type V and compiled once per ISA level (kernels/<isa>/
// f32_attention__<isa>.cpp). Everything is vectorized along head_dim: q, k, v and out rows are
// read and written in place, with masked loads/stores for a head_dim that is not a multiple of
// the vector width, so any head_dim >= 1 works and no row is read or written past its end.
#pragma once
#include <algorithm>
#include <cstddef>
#include <limits>

#include "kernels/common/f32_attention_tiled.h"
#include "kernels/common/f32_math.h"
#include "kernels/f32_attention_kernels.h"

namespace pyengine::kernels {

template <class V>
static inline float f32_first_lane(typename V::Reg x) {
  alignas(64) float lanes[V::kWidth];
  V::store(lanes, x);
  return lanes[0];
}

// e^x for one float, by the same vector routine as the probabilities.
template <class V>
static inline float f32_exp_scalar(float x) {
  return f32_first_lane<V>(f32_exp<V>(V::broadcast(x)));
}

// Lane w = q . k_w for the kWidth keys k_w = k + min(w, nk - 1) * head_dim (1 <= nk <= kWidth:
// missing keys repeat the last one, so nothing past key nk - 1 is read). One accumulator per key
// runs along head_dim; a single transposing reduction then yields the kWidth dot products.
template <class V>
static inline typename V::Reg f32_dot_keys(const float* q, const float* k, int head_dim, int nk) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  const float* kw[W];
#pragma GCC unroll 16
  for (int w = 0; w < W; ++w) kw[w] = k + size_t(std::min(w, nk - 1)) * size_t(head_dim);
  R acc[W];
#pragma GCC unroll 16
  for (int w = 0; w < W; ++w) acc[w] = V::zero();
  int d = 0;
  for (; d + W <= head_dim; d += W) {
    const R qv = V::load(q + d);
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) acc[w] = V::fmadd(qv, V::load(kw[w] + d), acc[w]);
  }
  if (d < head_dim) {
    const int lanes = head_dim - d;
    const R qv = V::load_first(q + d, lanes);
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) acc[w] = V::fmadd(qv, V::load_first(kw[w] + d, lanes), acc[w]);
  }
  return V::reduce_add_each(acc);
}

// f32_dot_keys for a whole group of kWidth keys and a head_dim HD known at compile time, a
// multiple of kWidth: every key is then addressed from one pointer with a constant offset (with a
// run-time head_dim the compiler keeps kWidth pointers, more than there are registers).
template <class V, int HD>
static inline typename V::Reg f32_dot_keys_fixed(const float* q, const float* k) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  static_assert(HD % W == 0, "whole vectors only");
  R acc[W];
#pragma GCC unroll 16
  for (int w = 0; w < W; ++w) acc[w] = V::zero();
#pragma GCC unroll 32
  for (int d = 0; d < HD; d += W) {
    const R qv = V::load(q + d);
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) acc[w] = V::fmadd(qv, V::load(k + w * HD + d), acc[w]);
  }
  return V::reduce_add_each(acc);
}

// o[0 : NC * W] = alpha * o + sum_{j < n} p[j] * v_j[0 : NC * W], v_j at v + j * ld. With TAIL,
// the last vector holds only `tail` (< W) valid lanes of v (masked loads; o's padding gets 0).
// Even and odd keys go to separate accumulators (two FMA chains per vector, added at the end),
// so that even one or two vectors keep enough FMAs in flight.
template <class V, int NC, bool TAIL>
static void f32_attention_pv_chunk(const float* p, const float* v, size_t ld, int n, int tail,
                                   typename V::Reg alpha, float* o) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  const auto load_v = [&](const float* vj, int c) {
    return TAIL && c == NC - 1 ? V::load_first(vj + c * W, tail) : V::load(vj + c * W);
  };
  R even[NC], odd[NC];
#pragma GCC unroll 8
  for (int c = 0; c < NC; ++c) {
    even[c] = V::mul(V::load(o + c * W), alpha);
    odd[c] = V::zero();
  }
  int j = 0;
  for (; j + 2 <= n; j += 2) {
    const R p0 = V::broadcast(p[j]), p1 = V::broadcast(p[j + 1]);
    const float* v0 = v + size_t(j) * ld;
    const float* v1 = v0 + ld;
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) {
      even[c] = V::fmadd(p0, load_v(v0, c), even[c]);
      odd[c] = V::fmadd(p1, load_v(v1, c), odd[c]);
    }
  }
  if (j < n) {
    const R p0 = V::broadcast(p[j]);
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) even[c] = V::fmadd(p0, load_v(v + size_t(j) * ld, c), even[c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < NC; ++c) V::store(o + c * W, V::add(even[c], odd[c]));
}

// Vectors of o updated by one chunk: enough accumulators to hide the FMA latency, few enough to
// leave registers for the loads on every level.
constexpr int kAttentionPvChunk = 4;

// o[0 : head_dim] = alpha * o + sum_{j < n} p[j] * v_j, in chunks of kAttentionPvChunk vectors.
template <class V>
static void f32_attention_pv(const float* p, const float* v, int n, int head_dim, float alpha,
                             float* o) {
  using R = typename V::Reg;
  using ChunkFn = void (*)(const float*, const float*, size_t, int, int, R, float*);
  constexpr int W = V::kWidth;
  constexpr int NC = kAttentionPvChunk;
  static constexpr ChunkFn kChunks[2][NC] = {
      {&f32_attention_pv_chunk<V, 1, false>, &f32_attention_pv_chunk<V, 2, false>,
       &f32_attention_pv_chunk<V, 3, false>, &f32_attention_pv_chunk<V, 4, false>},
      {&f32_attention_pv_chunk<V, 1, true>, &f32_attention_pv_chunk<V, 2, true>,
       &f32_attention_pv_chunk<V, 3, true>, &f32_attention_pv_chunk<V, 4, true>},
  };
  static_assert(NC == 4, "kChunks lists chunks of 1 .. 4 vectors");
  const size_t ld = size_t(head_dim);
  const R a = V::broadcast(alpha);
  const int full = head_dim / W, tail = head_dim % W;
  int c = 0;
  for (; c + NC <= full; c += NC) {
    f32_attention_pv_chunk<V, NC, false>(p, v + c * W, ld, n, W, a, o + c * W);
  }
  const int rest = full - c + (tail > 0 ? 1 : 0);  // 0 .. NC vectors, the last maybe partial
  if (rest > 0) kChunks[tail > 0][rest - 1](p, v + c * W, ld, n, tail, a, o + c * W);
}

// One online-softmax step of one query row over n >= 1 keys it sees (k, v at the first key):
// scores into s, the new running max, then rescale (l, o) and add this step's keys.
// s: scratch of n rounded up to W floats. HD > 0: head_dim == HD (see f32_dot_keys_fixed).
// softcap > 0: scores soft-capped (f32_softcap).
template <class V, int HD>
static inline void f32_attention_row_step(const float* q, const float* k, const float* v, int n,
                                          int head_dim, float scale, float softcap, float* s,
                                          float& m, float& l, float* o) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  const int n_vec = (n + W - 1) / W;
  const R scale_v = V::broadcast(scale);
  R mx = V::broadcast(-std::numeric_limits<float>::infinity());
  for (int g = 0; g < n_vec; ++g) {
    const int j = g * W;
    const float* kj = k + size_t(j) * size_t(head_dim);
    R dots;
    if constexpr (HD > 0) {
      dots = j + W <= n ? f32_dot_keys_fixed<V, HD>(q, kj) : f32_dot_keys<V>(q, kj, HD, n - j);
    } else {
      dots = f32_dot_keys<V>(q, kj, head_dim, std::min(W, n - j));
    }
    R sv = V::mul(dots, scale_v);
    if (softcap > 0.f) sv = f32_softcap<V>(sv, softcap);
    V::store(s + j, sv);
    mx = V::max(mx, sv);  // lanes past n repeat key n - 1's score: harmless for the max
  }
  const float m_new = std::max(m, V::reduce_max(mx));
  const R m_new_v = V::broadcast(m_new);
  for (int g = 0; g < n_vec; ++g) {
    V::store(s + g * W, f32_exp<V>(V::sub(V::load(s + g * W), m_new_v)));
  }
  for (int j = n; j < n_vec * W; ++j) s[j] = 0.f;  // drop the repeated keys
  R sum = V::zero();
  for (int g = 0; g < n_vec; ++g) sum = V::add(sum, V::load(s + g * W));
  // The first keys of a row: nothing to rescale (and m - m_new would be -inf).
  const float alpha =
      m == -std::numeric_limits<float>::infinity() ? 0.f : f32_exp_scalar<V>(m - m_new);
  l = l * alpha + V::reduce_add(sum);
  m = m_new;
  f32_attention_pv<V>(s, v, n, head_dim, alpha, o);
}

// F32AttentionPartialFn. Keys are walked in blocks of KB; inside a block every row of the group
// takes its step in turn, so each block of K and V comes from memory once for all the query
// heads of the KV group (and all the positions of the block) and is re-read from L1/L2.
// HD > 0: compiled for head_dim == HD (see f32_dot_keys_fixed).
template <class V, int KB, int HD>
static void f32_attention_partial_hd(const F32AttentionPartialArgs& a) {
  static_assert(KB % V::kWidth == 0, "the score scratch holds whole vectors");
  const int rows = a.n_pos * a.group;
  const int d = HD > 0 ? HD : a.head_dim;
  const size_t ldo = f32_attention_ldo(d);
  float* o = a.state;  // [rows][ldo]
  float* m = o + size_t(rows) * ldo;
  float* l = m + rows;
  for (int r = 0; r < rows; ++r) {
    m[r] = -std::numeric_limits<float>::infinity();
    l[r] = 0.f;
    for (size_t i = 0; i < ldo; i += V::kWidth) V::store(o + size_t(r) * ldo + i, V::zero());
  }
  alignas(64) float s[KB];  // one row's scores, then probabilities, for one block
  // Position 0 has the lowest window bound: no row sees a key below it.
  for (int j0 = std::max(a.key_begin, a.row_begin); j0 < a.key_end; j0 += KB) {
    const int j1 = std::min(a.key_end, j0 + KB);
    for (int t = 0; t < a.n_pos; ++t) {
      const int begin = std::max(j0, a.row_begin + t * a.row_begin_step);
      const int end = std::min(j1, a.row_end + t * a.row_end_step);
      if (end <= begin) continue;  // this position sees none of the block (causal, window)
      const float* kb = a.k + size_t(begin) * size_t(d);
      const float* vb = a.v + size_t(begin) * size_t(d);
      for (int i = 0; i < a.group; ++i) {
        const int r = t * a.group + i;
        f32_attention_row_step<V, HD>(a.q + size_t(t) * a.ldq + size_t(i) * size_t(d), kb, vb,
                                      end - begin, d, a.scale, a.softcap, s, m[r], l[r],
                                      o + size_t(r) * ldo);
      }
    }
  }
}

template <class V, int KB>
static void f32_attention_partial(const F32AttentionPartialArgs& a) {
  switch (a.head_dim) {  // the most common head dims get their own code
    case 64:
      return f32_attention_partial_hd<V, KB, 64>(a);
    case 128:
      return f32_attention_partial_hd<V, KB, 128>(a);
    default:
      return f32_attention_partial_hd<V, KB, 0>(a);
  }
}

// F32AttentionMergeFn. The output row itself accumulates sum_c w_c o_c, then is divided by L.
template <class V>
static void f32_attention_merge(const F32AttentionMergeArgs& a) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int rows = a.n_pos * a.group;
  const int d = a.head_dim;
  const size_t ldo = f32_attention_ldo(d);
  const int full = d - d % W;
  for (int t = 0; t < a.n_pos; ++t) {
    for (int i = 0; i < a.group; ++i) {
      const int r = t * a.group + i;
      float* dst = a.out + size_t(t) * a.ldout + size_t(i) * size_t(d);
      // Part c's block: o [rows][ldo], then m [rows], then l [rows].
      const auto block = [&](int c) { return a.state + size_t(c) * a.state_stride; };
      const auto o_of = [&](int c) { return block(c) + size_t(r) * ldo; };
      const auto m_of = [&](int c) { return block(c)[size_t(rows) * ldo + r]; };
      const auto l_of = [&](int c) { return block(c)[size_t(rows) * ldo + rows + r]; };
      float m_max = kNegInf;
      for (int c = 0; c < a.parts; ++c) m_max = std::max(m_max, m_of(c));
      if (m_max == kNegInf) {
        for (int j = 0; j < full; j += W) V::store(dst + j, V::zero());
        if (full < d) V::store_first(dst + full, V::zero(), d - full);
        continue;
      }
      float l_sum = 0.f;
      bool first = true;
      for (int c = 0; c < a.parts; ++c) {
        if (m_of(c) == kNegInf) continue;  // this part saw no key of the row
        const float w = f32_exp_scalar<V>(m_of(c) - m_max);
        l_sum += w * l_of(c);
        const R wv = V::broadcast(w);
        const float* oc = o_of(c);
        for (int j = 0; j < full; j += W) {
          const R prev = first ? V::zero() : V::load(dst + j);
          V::store(dst + j, V::fmadd(wv, V::load(oc + j), prev));
        }
        if (full < d) {
          const R prev = first ? V::zero() : V::load_first(dst + full, d - full);
          V::store_first(dst + full, V::fmadd(wv, V::load(oc + full), prev), d - full);
        }
        first = false;
      }
      const R l_v = V::broadcast(l_sum);
      for (int j = 0; j < full; j += W) V::store(dst + j, V::div(V::load(dst + j), l_v));
      if (full < d) {
        V::store_first(dst + full, V::div(V::load_first(dst + full, d - full), l_v), d - full);
      }
    }
  }
}

// The table entry of one level: KB keys per online-softmax step of the row kernel, tile shape T
// for the tiled kernel (see f32_attention_tiled.h), used from tiled_min_rows rows on.
template <class V, int KB, class T>
static F32AttentionKernels f32_attention_table(const char* name, int tiled_min_rows) {
  return {name,
          KB,
          &f32_attention_partial<V, KB>,
          &f32_attention_partial_tiled<V, T>,
          &f32_attention_tiled_scratch_floats<V, T>,
          tiled_min_rows,
          V::kWidth,
          &f32_attention_merge<V>};
}

}  // namespace pyengine::kernels
