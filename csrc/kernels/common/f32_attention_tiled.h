// The many-query-rows attention kernel (prefill, encoders): an F32AttentionPartialFn that works
// like a GEMM, written once against a vector-traits type V and a tile shape T (see
// kernels/f32_attention_kernels.h for the contract). No horizontal sums anywhere:
//
//   The query rows of the call lie along the vector lanes. Packed once per call, scaled:
//     qt [head_dim][ld]   qt[d][r] = scale * q_r[d]   (ld = rows rounded up to W; the lanes past
//                         the last row repeat it, and softmax masks them out)
//   For each block of up to KB keys (k, v rows read in place, never copied):
//     st [KB][ld]   st[j][r] = sum_d k_j[d] * qt[d][r]       broadcast(k_j[d]) * qt[d] vectors
//     online softmax down the columns of st, per lane (running max m, sum l, rescale alpha)
//     ot [dpad][ld] ot[d][r] = alpha[r] ot[d][r] + sum_j v_j[d] * st[j][r]   broadcast(v_j[d])
//   and finally ot is written, transposed, into the state block (or, when the call has an
//   output, divided by l into the output rows: the merge of this one state).
//
// Both products are the one micro-kernel f32_attention_tile: C[n][lanes] (+)= sum_k a(n, k) *
// B[k][lanes], a read from memory one float at a time and broadcast, B and C whole vectors of
// query rows. A loaded K or V value feeds MRV vectors of query rows (the query heads of the GQA
// group and several positions); a loaded row vector feeds NR keys (or head dims). Nothing of K
// is packed, so the query block may be small and the packing cost stays O(rows * head_dim).
#pragma once
#include <algorithm>
#include <cfloat>
#include <cstddef>
#include <limits>

#include "kernels/common/f32_math.h"
#include "kernels/f32_attention_kernels.h"

namespace pyengine::kernels {

// Tile shape of one level (a type with these members, e.g. avx512's F32AttentionTileShape):
//   kMrv   vectors of query rows per micro-tile (both products)
//   kQkNr  keys per micro-tile of the scores, kPvNr head dims per micro-tile of P V
//   kKeyBlock keys per online-softmax step, a multiple of kQkNr
// MRV * NR accumulators plus MRV row vectors and one broadcast fit the level's registers.

// Scratch of the tiled kernel, in floats (see the layout at the top).
template <class V, class T>
static size_t f32_attention_tiled_scratch_floats(int rows, int head_dim) {
  constexpr int W = V::kWidth;
  const size_t ld = (size_t(rows) + W - 1) / W * W;
  const size_t dpad = (size_t(head_dim) + T::kPvNr - 1) / T::kPvNr * T::kPvNr;
  return ld * (size_t(head_dim) + T::kKeyBlock + dpad + 5);
}

// One micro-tile: for n < NR and lanes [0, MRV * W),
//   c[n * ldc + lane] = (ACC ? alpha[lane] * c[n * ldc + lane] : 0) + sum_{k < k_len} a(n, k) *
//   b[k * ldb + lane],  a(n, k) = a[n * lda_n + k * lda_k].
// LDA_N, LDA_K > 0 are the strides at compile time (0: the run-time lda_n, lda_k), so that the
// NR values of one k are addressed from one pointer with constant offsets. With CLAMP only
// n < n_valid are real: a(n, k) for n >= n_valid reads row n_valid - 1 instead (nothing past it
// is read), and the c rows n >= n_valid get values the caller ignores (its scratch holds them).
template <class V, int MRV, int NR, int LDA_N, int LDA_K, bool CLAMP, bool ACC>
static void f32_attention_tile(const float* a, size_t lda_n, size_t lda_k, int n_valid, int k_len,
                               const float* b, size_t ldb, float* c, size_t ldc,
                               const float* alpha) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  const size_t sn = LDA_N > 0 ? size_t(LDA_N) : lda_n;
  const size_t sk = LDA_K > 0 ? size_t(LDA_K) : lda_k;
  R acc[NR][MRV];
  if constexpr (ACC) {
    R al[MRV];
#pragma GCC unroll 4
    for (int v = 0; v < MRV; ++v) al[v] = V::load(alpha + v * W);
#pragma GCC unroll 16
    for (int n = 0; n < NR; ++n) {
#pragma GCC unroll 4
      for (int v = 0; v < MRV; ++v) acc[n][v] = V::mul(V::load(c + n * ldc + v * W), al[v]);
    }
  } else {
#pragma GCC unroll 16
    for (int n = 0; n < NR; ++n) {
#pragma GCC unroll 4
      for (int v = 0; v < MRV; ++v) acc[n][v] = V::zero();
    }
  }
  if constexpr (CLAMP) {
    const float* an[NR];
#pragma GCC unroll 16
    for (int n = 0; n < NR; ++n) an[n] = a + size_t(std::min(n, n_valid - 1)) * sn;
    for (int k = 0; k < k_len; ++k) {
      R bv[MRV];
#pragma GCC unroll 4
      for (int v = 0; v < MRV; ++v) bv[v] = V::load(b + k * ldb + v * W);
#pragma GCC unroll 16
      for (int n = 0; n < NR; ++n) {
        const R x = V::broadcast(an[n][k * sk]);
#pragma GCC unroll 4
        for (int v = 0; v < MRV; ++v) acc[n][v] = V::fmadd(x, bv[v], acc[n][v]);
      }
    }
  } else {
#pragma GCC unroll 4
    for (int k = 0; k < k_len; ++k) {
      const float* ak = a + k * sk;
      R bv[MRV];
#pragma GCC unroll 4
      for (int v = 0; v < MRV; ++v) bv[v] = V::load(b + k * ldb + v * W);
#pragma GCC unroll 16
      for (int n = 0; n < NR; ++n) {
        const R x = V::broadcast(ak[n * sn]);
#pragma GCC unroll 4
        for (int v = 0; v < MRV; ++v) acc[n][v] = V::fmadd(x, bv[v], acc[n][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int n = 0; n < NR; ++n) {
#pragma GCC unroll 4
    for (int v = 0; v < MRV; ++v) V::store(c + n * ldc + v * W, acc[n][v]);
  }
}

// f32_attention_tile over all `nrv` row vectors of b and c, MRV at a time (the last chunk with
// fewer), for one NR-wide slice of n.
template <class V, int MRV, int NR, int LDA_N, int LDA_K, bool CLAMP, bool ACC>
static inline void f32_attention_tile_rows(int nrv, const float* a, size_t lda_n, size_t lda_k,
                                           int n_valid, int k_len, const float* b, size_t ldb,
                                           float* c, size_t ldc, const float* alpha) {
  constexpr int W = V::kWidth;
  int v0 = 0;
  for (; v0 + MRV <= nrv; v0 += MRV) {
    f32_attention_tile<V, MRV, NR, LDA_N, LDA_K, CLAMP, ACC>(
        a, lda_n, lda_k, n_valid, k_len, b + v0 * W, ldb, c + v0 * W, ldc, alpha + v0 * W);
  }
  if constexpr (MRV > 1) {
    if (v0 < nrv) {
      f32_attention_tile_rows<V, MRV - 1, NR, LDA_N, LDA_K, CLAMP, ACC>(
          nrv - v0, a, lda_n, lda_k, n_valid, k_len, b + v0 * W, ldb, c + v0 * W, ldc,
          alpha + v0 * W);
    }
  }
}

// e^x for the softmax's x = s - max <= 0: f32_exp's reduction and polynomial, with x clamped to
// [-87.33, +inf) so that 2^n is one normal power of two (one scaling step, not two): a result
// below FLT_MIN comes out as about FLT_MIN instead, an error of < 1.2e-38 against a row sum >= 1.
// NaN propagates (x is max's second operand, see f32_exp).
template <class V>
static inline typename V::Reg f32_exp_nonpositive(typename V::Reg x) {
  return f32_math_detail::exp_clamped<V, true>(V::max(V::broadcast(-87.33f), x));
}

// cap * tanh(x / cap): Gemma 2's soft-capping of attention scores (see F32AttentionPartialArgs).
template <class V>
static inline typename V::Reg f32_softcap(typename V::Reg x, float cap) {
  return V::mul(V::broadcast(cap), f32_tanh<V>(V::mul(x, V::broadcast(1.f / cap))));
}

// Softmax step of one key block for the rows of one vector, down the columns of st (n_eff keys;
// with MASK, lane r's row sees only keys lo[r] <= j < lim[r] of them): the block's max, the new
// running max, p = exp(s - m) in place (0 for the keys a row does not see), l and alpha.
template <class V, bool MASK>
static inline void f32_attention_tiled_softmax(float* st, size_t ld, int n_eff, const float* lo,
                                               const float* lim, float* m, float* l, float* alpha) {
  using R = typename V::Reg;
  const R neg_inf = V::broadcast(-std::numeric_limits<float>::infinity());
  const R one = V::broadcast(1.f);
  const R lim_v = V::load(lim);
  const R lo_v = V::load(lo);
  // Lane r sees key j when lo[r] <= j < lim[r]: x where it does, `none` where it does not.
  const auto seen = [&](R jv, R x, R none) {
    return V::select(V::lt(jv, lim_v), V::select(V::lt(jv, lo_v), none, x), none);
  };
  R mx = neg_inf;
  if constexpr (MASK) {
    R jv = V::zero();  // the key index j, as float in every lane
    for (int j = 0; j < n_eff; ++j) {
      mx = V::max(mx, seen(jv, V::load(st + j * ld), neg_inf));
      jv = V::add(jv, one);
    }
  } else {
    R mx1 = neg_inf, mx2 = neg_inf, mx3 = neg_inf;  // four chains: max has a latency of 4
    int j = 0;
    for (; j + 4 <= n_eff; j += 4) {
      mx = V::max(mx, V::load(st + j * ld));
      mx1 = V::max(mx1, V::load(st + (j + 1) * ld));
      mx2 = V::max(mx2, V::load(st + (j + 2) * ld));
      mx3 = V::max(mx3, V::load(st + (j + 3) * ld));
    }
    for (; j < n_eff; ++j) mx = V::max(mx, V::load(st + j * ld));
    mx = V::max(V::max(mx, mx1), V::max(mx2, mx3));
  }
  const R m_old = V::load(m);
  const R m_new = V::max(m_old, mx);
  // A row that has seen no key yet keeps m = -inf; subtracting 0 instead keeps exp's argument
  // at -inf (giving 0), never -inf - -inf.
  const R m_sub = V::select(V::lt(m_new, V::broadcast(-FLT_MAX)), V::zero(), m_new);
  const R al = f32_exp<V>(V::sub(m_old, m_sub));  // 0 for a row's first keys: nothing to rescale
  R sum = V::zero();
  R jv = V::zero();
  for (int j = 0; j < n_eff; ++j) {
    R p = f32_exp_nonpositive<V>(V::sub(V::load(st + j * ld), m_sub));
    if constexpr (MASK) {
      p = seen(jv, p, V::zero());
      jv = V::add(jv, one);
    }
    V::store(st + j * ld, p);
    sum = V::add(sum, p);
  }
  V::store(m, m_new);
  V::store(l, V::fmadd(V::load(l), al, sum));
  V::store(alpha, al);
}

// The rows of a block, r = t * group + i (position t, head i of the group): row r at
// base + t * ld_pos + i * ld_head. F is float or const float.
template <class F>
struct F32AttentionRows {
  F* base;
  size_t ld_pos, ld_head;
  int group;
};

// Pointers to rows r0 .. r0 + W - 1, those past `rows` repeating row rows - 1.
template <int W, class F>
static inline void f32_attention_row_pointers(const F32AttentionRows<F>& a, int r0, int rows,
                                              F* (&p)[W]) {
  int t = r0 / a.group, i = r0 % a.group;
  for (int w = 0; w < W; ++w) {
    p[w] = a.base + size_t(t) * a.ld_pos + size_t(i) * a.ld_head;
    if (r0 + w + 1 < rows && ++i == a.group) {
      i = 0;
      ++t;
    }
  }
}

// qt[k][r] = scale * row r [k] for k < d, r < ld (ld: rows rounded up to W; the rows past `rows`
// repeat the last one). W x W blocks: W rows loaded (a short last column block with masked
// loads), transposed in registers, stored as W vectors.
template <class V>
static void f32_attention_pack_rows(int rows, int d, float scale,
                                    const F32AttentionRows<const float>& src, float* qt,
                                    size_t ld) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  const R s = V::broadcast(scale);
  for (int r0 = 0; r0 < rows; r0 += W) {
    const float* p[W];
    f32_attention_row_pointers<W>(src, r0, rows, p);
    for (int k0 = 0; k0 < d; k0 += W) {
      const int nk = std::min(W, d - k0);
      R x[W];
      if (nk == W) {
#pragma GCC unroll 16
        for (int i = 0; i < W; ++i) x[i] = V::mul(s, V::load(p[i] + k0));
      } else {
#pragma GCC unroll 16
        for (int i = 0; i < W; ++i) x[i] = V::mul(s, V::load_first(p[i] + k0, nk));
      }
      V::transpose(x);
      for (int k = 0; k < nk; ++k) V::store(qt + size_t(k0 + k) * ld + r0, x[k]);
    }
  }
}

// The inverse for the rows r < rows: row r [k] = qt[k][r] * mul[r] (mul null: 1) for k < d and,
// when ld_row >= d rounded up to W (a state block's row), 0 for d <= k < that. qt holds at least
// d rows of ld floats.
template <class V>
static void f32_attention_unpack_rows(int rows, int d, const float* qt, size_t ld, const float* mul,
                                      const F32AttentionRows<float>& dst, int ld_row) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  for (int r0 = 0; r0 < rows; r0 += W) {
    const int nr = std::min(W, rows - r0);
    const R mv = mul != nullptr ? V::load(mul + r0) : V::broadcast(1.f);
    float* p[W];
    f32_attention_row_pointers<W>(dst, r0, rows, p);
    for (int k0 = 0; k0 < d; k0 += W) {
      const int nk = std::min(W, d - k0);
      R x[W];
#pragma GCC unroll 16
      for (int k = 0; k < W; ++k) {
        x[k] = k < nk ? V::mul(V::load(qt + size_t(k0 + k) * ld + r0), mv) : V::zero();
      }
      V::transpose(x);
      const int width = k0 + W <= ld_row ? W : nk;  // a state row's padding lanes too
      if (width == W) {
        for (int i = 0; i < nr; ++i) V::store(p[i] + k0, x[i]);
      } else {
        for (int i = 0; i < nr; ++i) V::store_first(p[i] + k0, x[i], width);
      }
    }
  }
}

// F32AttentionPartialFn for many rows; needs a.scratch (f32_attention_tiled_scratch_floats).
// HD > 0: compiled for head_dim == HD (constant strides in the scores' micro-kernel).
template <class V, class T, int HD>
static void f32_attention_partial_tiled_hd(const F32AttentionPartialArgs& a) {
  using R = typename V::Reg;
  constexpr int W = V::kWidth;
  constexpr int KB = T::kKeyBlock, MRV = T::kMrv, QK = T::kQkNr, PV = T::kPvNr;
  static_assert(KB % QK == 0, "the score scratch holds whole micro-tiles");
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int d = HD > 0 ? HD : a.head_dim;
  const int rows = a.n_pos * a.group;
  const size_t ld = (size_t(rows) + W - 1) / W * W;
  const int nrv = int(ld / W);
  const size_t dpad = (size_t(d) + PV - 1) / PV * PV;
  float* qt = a.scratch;      // [d][ld]
  float* st = qt + d * ld;    // [KB][ld]
  float* ot = st + KB * ld;   // [dpad][ld]
  float* m = ot + dpad * ld;  // [ld]
  float* l = m + ld;          // [ld]
  float* alpha = l + ld;      // [ld]
  float* lim = alpha + ld;    // [ld]
  float* lo = lim + ld;       // [ld]

  const F32AttentionRows<const float> q_rows{a.q, a.ldq, size_t(d), a.group};
  f32_attention_pack_rows<V>(rows, d, a.scale, q_rows, qt, ld);
  for (size_t i = 0; i < dpad * ld; i += W) V::store(ot + i, V::zero());
  for (size_t r = 0; r < ld; ++r) {
    m[r] = kNegInf;
    l[r] = 0.f;
  }

  // Position 0 has the lowest window bound: no row sees a key below it.
  for (int j0 = std::max(a.key_begin, a.row_begin); j0 < a.key_end; j0 += KB) {
    const int n = std::min(KB, a.key_end - j0);
    // Keys of this block position t sees: [first(t), seen(t)) of the block, both nondecreasing
    // in t. The block's columns run from j_lo = first(0) to n_eff = seen(last): those any row
    // sees. Only when rows differ (a causal diagonal, a window's edge) do lo[r], lim[r] give
    // each row's range (relative to j_lo); the lanes past the last row (copies of it) may see
    // them all: they are never read out.
    const auto seen = [&](int t) {
      return std::clamp(std::min(a.key_end, a.row_end + t * a.row_end_step) - j0, 0, n);
    };
    const auto first = [&](int t) {
      return std::clamp(a.row_begin + t * a.row_begin_step - j0, 0, n);
    };
    const int j_lo = first(0), n_eff = seen(a.n_pos - 1);
    if (n_eff <= j_lo) continue;  // every row's range ends before the first one starts
    const int count = n_eff - j_lo;
    const bool mask = seen(0) < n_eff || j_lo < first(a.n_pos - 1);
    if (mask) {
      for (int t = 0; t < a.n_pos; ++t) {
        const float lim_t = float(seen(t) - j_lo), lo_t = float(first(t) - j_lo);
        for (int i = 0; i < a.group; ++i) {
          lim[t * a.group + i] = lim_t;
          lo[t * a.group + i] = lo_t;
        }
      }
      for (size_t r = size_t(rows); r < ld; ++r) {
        lim[r] = float(count);
        lo[r] = 0.f;
      }
    }
    const float* kb = a.k + size_t(j0 + j_lo) * size_t(d);
    const float* vb = a.v + size_t(j0 + j_lo) * size_t(d);

    // st[j][:] = k_j . qt for j < count, QK keys at a time (the last tile clamped).
    for (int j = 0; j < count; j += QK) {
      if (j + QK <= count) {
        f32_attention_tile_rows<V, MRV, QK, HD, 1, false, false>(nrv, kb + size_t(j) * d, d, 1, QK,
                                                                 d, qt, ld, st + j * ld, ld, alpha);
      } else {
        f32_attention_tile_rows<V, MRV, QK, HD, 1, true, false>(
            nrv, kb + size_t(j) * d, d, 1, count - j, d, qt, ld, st + j * ld, ld, alpha);
      }
    }
    if (a.softcap > 0.f) {
      for (size_t i = 0; i < size_t(count) * ld; i += W) {
        V::store(st + i, f32_softcap<V>(V::load(st + i), a.softcap));
      }
    }
    for (int v = 0; v < nrv; ++v) {
      if (!mask) {  // every row sees every key of the block's columns
        f32_attention_tiled_softmax<V, false>(st + v * W, ld, count, lo + v * W, lim + v * W,
                                              m + v * W, l + v * W, alpha + v * W);
      } else {
        f32_attention_tiled_softmax<V, true>(st + v * W, ld, count, lo + v * W, lim + v * W,
                                             m + v * W, l + v * W, alpha + v * W);
      }
    }
    // ot[k][:] = alpha * ot[k][:] + sum_j v_j[k] st[j][:], PV head dims at a time.
    for (int k = 0; k < d; k += PV) {
      if (k + PV <= d) {
        f32_attention_tile_rows<V, MRV, PV, 1, HD, false, true>(nrv, vb + k, 1, d, PV, count, st,
                                                                ld, ot + k * ld, ld, alpha);
      } else {
        f32_attention_tile_rows<V, MRV, PV, 1, HD, true, true>(nrv, vb + k, 1, d, d - k, count, st,
                                                               ld, ot + k * ld, ld, alpha);
      }
    }
  }

  if (a.out != nullptr) {
    // What merge of this one state gives: o / l, as o * (1 / l) (one more rounding, and no
    // division per element); zeros for a row that saw no key (l = 0, o = 0; l >= 1 otherwise:
    // the key at the running max adds exp(0)).
    const R one = V::broadcast(1.f), half = V::broadcast(0.5f);
    for (int v = 0; v < nrv; ++v) {
      const R lv = V::load(l + v * W);
      V::store(l + v * W, V::div(one, V::select(V::lt(lv, half), one, lv)));
    }
    const F32AttentionRows<float> out_rows{a.out, a.ldout, size_t(d), a.group};
    f32_attention_unpack_rows<V>(rows, d, ot, ld, l, out_rows, d);
  } else {
    // The state block: o [rows][ldo], then m [rows], then l [rows].
    const size_t ldo = f32_attention_ldo(d);
    float* o = a.state;
    const F32AttentionRows<float> o_rows{o, size_t(a.group) * ldo, ldo, a.group};
    f32_attention_unpack_rows<V>(rows, d, ot, ld, nullptr, o_rows, int(ldo));
    std::copy(m, m + rows, o + size_t(rows) * ldo);
    std::copy(l, l + rows, o + size_t(rows) * ldo + rows);
  }
}

template <class V, class T>
static void f32_attention_partial_tiled(const F32AttentionPartialArgs& a) {
  switch (a.head_dim) {  // the common head dims get constant strides
    case 32:
      return f32_attention_partial_tiled_hd<V, T, 32>(a);
    case 64:
      return f32_attention_partial_tiled_hd<V, T, 64>(a);
    case 80:
      return f32_attention_partial_tiled_hd<V, T, 80>(a);
    case 96:
      return f32_attention_partial_tiled_hd<V, T, 96>(a);
    case 128:
      return f32_attention_partial_tiled_hd<V, T, 128>(a);
    default:
      return f32_attention_partial_tiled_hd<V, T, 0>(a);
  }
}

}  // namespace pyengine::kernels
