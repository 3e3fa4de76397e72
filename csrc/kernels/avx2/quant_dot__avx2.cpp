// AVX2 quantized-weight dot kernels. Each weight sub-block of 32 values is unpacked once into
// 32 bytes and multiplied with up to four activation rows: vpmaddubsw (u8 x s8 pairs -> s16),
// vpmaddwd with the sub-block's int scales (s16 pairs -> s32, Q6_K's per-16 scales ride here),
// then one fp32 FMA per row by d_w * d_x. Formats whose values are unsigned (Q4/Q5, K-quants)
// feed vpmaddubsw directly and add m_w * s_x once per sub-block; signed ones (Q8_0, Q6_K) use
// the sign trick |w| x sign(x, w). No int16 overflow: |pair sums| <= 2 * 63 * 127 (unsigned)
// or 2 * 128 * 127 (signed) < 32768.
#include <immintrin.h>

#include "kernels/common/quant_blocks.h"
#include "kernels/common/quant_panel.h"
#include "kernels/quant_kernels.h"

namespace pyengine::kernels::avx2 {
namespace {

inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 16 bytes of nibble pairs -> 32 values: low nibbles (values 0..15), then high (16..31).
inline __m256i nibbles16(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(15);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

// Byte l = 16 where bit l of `bits` is set, else 0.
inline __m256i bits_to_16(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, 4);
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                        2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i mask = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)), shuf), mask);
  return _mm256_and_si256(_mm256_cmpeq_epi8(v, mask), _mm256_set1_epi8(16));
}

// One decoded sub-block: 32 values, the int16 scale per pair of values, d_w and m_w.
struct WSub {
  __m256i q;
  __m256i sc;
  float d, m;
};

inline __m256i ones16() { return _mm256_set1_epi16(1); }

// Per format: kSubs sub-blocks per block, kSigned values, kOffset (an m_w term); prepare()
// decodes what a whole block shares, sub() one sub-block.
struct Q8_0 {
  static constexpr int kSubs = 1, kBytes = 34;
  static constexpr bool kSigned = true, kOffset = false;
  struct Ctx {};
  static void prepare(const uint8_t*, Ctx&) {}
  static WSub sub(const uint8_t* b, const Ctx&, int) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), ones16(), half(b), 0.0f};
  }
};
struct Q4_0 {
  static constexpr int kSubs = 1, kBytes = 18;
  static constexpr bool kSigned = false, kOffset = true;
  struct Ctx {};
  static void prepare(const uint8_t*, Ctx&) {}
  static WSub sub(const uint8_t* b, const Ctx&, int) {
    const float d = half(b);
    return {nibbles16(b + 2), ones16(), d, -8.0f * d};
  }
};
struct Q4_1 {
  static constexpr int kSubs = 1, kBytes = 20;
  static constexpr bool kSigned = false, kOffset = true;
  struct Ctx {};
  static void prepare(const uint8_t*, Ctx&) {}
  static WSub sub(const uint8_t* b, const Ctx&, int) {
    return {nibbles16(b + 4), ones16(), half(b), half(b + 2)};
  }
};
struct Q5_0 {
  static constexpr int kSubs = 1, kBytes = 22;
  static constexpr bool kSigned = false, kOffset = true;
  struct Ctx {};
  static void prepare(const uint8_t*, Ctx&) {}
  static WSub sub(const uint8_t* b, const Ctx&, int) {
    const float d = half(b);
    return {_mm256_or_si256(nibbles16(b + 6), bits_to_16(b + 2)), ones16(), d, -16.0f * d};
  }
};
struct Q5_1 {
  static constexpr int kSubs = 1, kBytes = 24;
  static constexpr bool kSigned = false, kOffset = true;
  struct Ctx {};
  static void prepare(const uint8_t*, Ctx&) {}
  static WSub sub(const uint8_t* b, const Ctx&, int) {
    return {_mm256_or_si256(nibbles16(b + 8), bits_to_16(b + 4)), ones16(), half(b), half(b + 2)};
  }
};

// Q4_K and Q5_K: 8 sub-blocks share d, dmin and the 12 bytes of 6-bit scales and mins.
template <bool kFive>
struct QK45 {
  static constexpr int kSubs = 8, kBytes = kFive ? 176 : 144;
  static constexpr bool kSigned = false, kOffset = true;
  struct Ctx {
    alignas(32) float d[8];
    alignas(32) float m[8];
    __m256i qh;
  };
  static void prepare(const uint8_t* b, Ctx& c) {
    // The 12 scale bytes -> sc[0..7] in bytes 0..7 and mn[0..7] in bytes 8..15 of u (see
    // quant::k_scale_min): the low 6 bits of bytes 0..7 give sc[0..3], mn[0..3]; bytes 8..11
    // give the low 4 bits of sc[4..7] and mn[4..7], whose high 2 bits are bytes 0..7's top bits.
    uint32_t u[4];
    std::memcpy(u, b + 4, 12);
    constexpr uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
    const uint32_t mn_hi = ((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4);
    const uint32_t mn_lo = u[1] & k6;
    const uint32_t sc_hi = (u[2] & k4) | (((u[0] >> 6) & k2) << 4);
    const uint32_t sc_lo = u[0] & k6;
    const __m128i bytes = _mm_setr_epi32(int(sc_lo), int(sc_hi), int(mn_lo), int(mn_hi));
    const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
    const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8)));
    _mm256_store_ps(c.d, _mm256_mul_ps(sc, _mm256_set1_ps(half(b))));
    _mm256_store_ps(c.m, _mm256_mul_ps(mn, _mm256_set1_ps(-half(b + 2))));
    if constexpr (kFive) c.qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
  }
  static WSub sub(const uint8_t* b, const Ctx& c, int s) {
    const __m256i raw =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (kFive ? 48 : 16) + 32 * (s / 2)));
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i q =
        (s & 1) ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4) : _mm256_and_si256(raw, m4);
    if constexpr (kFive) {
      const __m256i bit = _mm256_set1_epi8(char(1 << s));
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(c.qh, bit), bit);
      q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)));
    }
    return {q, ones16(), c.d[s], c.m[s]};
  }
};

struct Q6_K {
  static constexpr int kSubs = 8, kBytes = 210;
  static constexpr bool kSigned = true, kOffset = false;
  struct Ctx {
    float d;
    __m256i qh[2];
  };
  static void prepare(const uint8_t* b, Ctx& c) {
    c.d = half(b + 208);
    c.qh[0] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128));
    c.qh[1] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 160));
  }
  static WSub sub(const uint8_t* b, const Ctx& c, int s) {
    const int h = s / 4, t = s % 4;
    const __m256i raw =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h + 32 * (t & 1)));
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i lo =
        (t >> 1) ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4) : _mm256_and_si256(raw, m4);
    const __m256i two =
        _mm256_and_si256(_mm256_srl_epi16(c.qh[h], _mm_cvtsi32_si128(2 * t)), _mm256_set1_epi8(3));
    const __m256i q =
        _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(two, 4)), _mm256_set1_epi8(32));
    const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192 + 8 * h + 2 * t);
    const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(scales[1]), _mm_set1_epi16(scales[0]));
    return {q, sc, c.d, 0.0f};
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// J weight rows (output columns) x R activation rows per pass: J * R independent FMA chains,
// each activation sub-block loaded once for J columns.
template <class F, int R, int J>
void dot_block(const QuantDotArgs& a, int j) {
  const int blocks = a.kb / F::kSubs;
  const uint8_t* rows[J];
  for (int c = 0; c < J; ++c) rows[c] = a.w + size_t(j + c) * a.w_stride;
  __m256 acc[J][R];
  float macc[J][R];
  for (int c = 0; c < J; ++c) {
    for (int r = 0; r < R; ++r) {
      acc[c][r] = _mm256_setzero_ps();
      macc[c][r] = 0.0f;
    }
  }
  for (int blk = 0; blk < blocks; ++blk) {
    typename F::Ctx ctx[J];
    for (int c = 0; c < J; ++c) {
      const uint8_t* b = rows[c] + size_t(blk) * F::kBytes;
      // Rows are short (a few KB) and consecutive: fetch the same block of the next group of
      // J rows into L2 (each of the block's cache lines), some KB ahead of the reads.
      for (int off = 0; off < F::kBytes; off += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(b + J * a.w_stride + off), _MM_HINT_T1);
      }
      F::prepare(b, ctx[c]);
    }
    for (int s = 0; s < F::kSubs; ++s) {
      const int sb = blk * F::kSubs + s;
      __m256i xq[R];
      for (int r = 0; r < R; ++r) {
        xq[r] = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(a.xq + (size_t(r) * a.x_stride + sb) * kQuantSub));
      }
      for (int c = 0; c < J; ++c) {
        const WSub w = F::sub(rows[c] + size_t(blk) * F::kBytes, ctx[c], s);
        const __m256i wu = F::kSigned ? _mm256_sign_epi8(w.q, w.q) : w.q;
        for (int r = 0; r < R; ++r) {
          const size_t x = size_t(r) * a.x_stride + size_t(sb);
          const __m256i xs = F::kSigned ? _mm256_sign_epi8(xq[r], w.q) : xq[r];
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wu, xs), w.sc);
          acc[c][r] =
              _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(w.d * a.xd[x]), acc[c][r]);
          if constexpr (F::kOffset) macc[c][r] += w.m * a.xs[x];
        }
      }
    }
  }
  for (int c = 0; c < J; ++c) {
    for (int r = 0; r < R; ++r) {
      float v = hsum(acc[c][r]) + macc[c][r];
      if (a.ep != nullptr) {
        if (a.ep->bias != nullptr) v += a.ep->bias[j + c];
        if (a.ep->residual != nullptr) v += a.ep->residual[size_t(r) * a.ep->ldr + j + c];
      }
      a.y[size_t(r) * a.ldy + j + c] = v;
    }
  }
}

template <class F, int R>
void dot_rows(const QuantDotArgs& a) {
  constexpr int J = R == 1 ? 4 : 2;
  int j = 0;
  for (; j + J <= a.n; j += J) dot_block<F, R, J>(a, j);
  for (; j < a.n; ++j) dot_block<F, R, 1>(a, j);
}

template <class F>
void dot(const QuantDotArgs& a) {
  switch (a.rows) {
    case 1:
      return dot_rows<F, 1>(a);
    case 2:
      return dot_rows<F, 2>(a);
    case 3:
      return dot_rows<F, 3>(a);
    default:
      return dot_rows<F, 4>(a);
  }
}

// ---- x8 layout (kernels/quant_kernels.h): 8 rows per pass, scales as vectors --------------

inline __m128i load16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
inline __m256i load32(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Stores one group's 8 results (natural row order) with the epilogue, rows < n_valid only.
inline void store_group(const QuantDotArgs& a, int r, int j0, int n_valid, __m256 v) {
  alignas(32) float out[8];
  _mm256_store_ps(out, v);
  float* y = a.y + size_t(r) * a.ldy + j0;
  for (int i = 0; i < n_valid; ++i) {
    float o = out[i];
    if (a.ep != nullptr) {
      if (a.ep->bias != nullptr) o += a.ep->bias[j0 + i];
      if (a.ep->residual != nullptr) o += a.ep->residual[size_t(r) * a.ep->ldr + j0 + i];
    }
    y[i] = o;
  }
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1: each 32-byte load holds two rows' nibbles; the low nibbles
// (values 0..15 of both rows) meet x[0:16] broadcast to both lanes, the high ones x[16:32], so
// one vpmaddwd leaves 4 partial sums of each of the two rows; two rounds of vphaddd reduce 8
// rows to one vector, in the order 0 2 4 6 1 3 5 7 (the scales are stored in that order). Q5's
// fifth bits: the two rows' 32-bit masks side by side, each bit spread to a byte of 16.
template <bool kOffset, bool kFive, int R>
void dot_x8_q4_rows(const QuantDotArgs& a, int r0) {
  constexpr int kHigh = kOffset ? 32 : 16;           // Q5: the 8 rows' high bits
  constexpr int kQuants = kHigh + (kFive ? 32 : 0);  // the 8 rows' nibbles
  constexpr int kBlock = kQuants + 128;
  constexpr float kCentre = kFive ? -16.0f : -8.0f;  // Q4_0/Q5_0: m = -8 d / -16 d
  // byte l of the low lane <- byte l / 8 of the first row's mask, of the high lane <- of the
  // second row's (bytes 4..7); values 16..31 use mask bytes 2, 3 (6, 7)
  const __m256i spread_lo = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4,
                                             4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5);
  const __m256i spread_hi = _mm256_add_epi8(spread_lo, _mm256_set1_epi8(2));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  const __m256i sixteen = _mm256_set1_epi8(16);
  const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  const __m256i natural = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const int groups = (a.n + 7) / 8;
  for (int g = 0; g < groups; ++g) {
    const uint8_t* grp = a.w + size_t(g) * a.w_stride;
    __m256 acc[R], macc[R];
    for (int r = 0; r < R; ++r) acc[r] = macc[r] = _mm256_setzero_ps();
    for (int b = 0; b < a.kb; ++b) {
      const uint8_t* blk = grp + size_t(b) * kBlock;
      for (int off = 0; off < kBlock; off += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(blk + 2048 + off), _MM_HINT_T1);
      }
      const __m256 d8 = _mm256_cvtph_ps(load16(blk));
      const __m256 m8 =
          kOffset ? _mm256_cvtph_ps(load16(blk + 16)) : _mm256_mul_ps(d8, _mm256_set1_ps(kCentre));
      __m256i xlo[R], xhi[R], pair[4][R];
      for (int r = 0; r < R; ++r) {
        const uint8_t* x = reinterpret_cast<const uint8_t*>(a.xq) +
                           (size_t(r0 + r) * a.x_stride + size_t(b)) * kQuantSub;
        xlo[r] = _mm256_broadcastsi128_si256(load16(x));
        xhi[r] = _mm256_broadcastsi128_si256(load16(x + 16));
      }
      for (int p = 0; p < 4; ++p) {
        const __m256i v = load32(blk + kQuants + 32 * p);
        __m256i lo = _mm256_and_si256(v, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if constexpr (kFive) {
          int64_t masks;
          std::memcpy(&masks, blk + kHigh + 8 * p, 8);
          const __m256i qh = _mm256_set1_epi64x(masks);
          const auto high = [&](__m256i spread) {
            const __m256i v8 = _mm256_and_si256(_mm256_shuffle_epi8(qh, spread), bit);
            return _mm256_and_si256(_mm256_cmpeq_epi8(v8, bit), sixteen);
          };
          lo = _mm256_or_si256(lo, high(spread_lo));
          hi = _mm256_or_si256(hi, high(spread_hi));
        }
        for (int r = 0; r < R; ++r) {
          const __m256i s16 =
              _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo[r]), _mm256_maddubs_epi16(hi, xhi[r]));
          pair[p][r] = _mm256_madd_epi16(s16, ones);
        }
      }
      for (int r = 0; r < R; ++r) {
        const size_t xb = size_t(r0 + r) * a.x_stride + size_t(b);
        const __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(pair[0][r], pair[1][r]),
                                               _mm256_hadd_epi32(pair[2][r], pair[3][r]));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums),
                                 _mm256_mul_ps(d8, _mm256_set1_ps(a.xd[xb])), acc[r]);
        macc[r] = _mm256_fmadd_ps(m8, _mm256_set1_ps(a.xs[xb]), macc[r]);
      }
    }
    const int valid = a.n - 8 * g < 8 ? a.n - 8 * g : 8;
    for (int r = 0; r < R; ++r) {
      const __m256 v = _mm256_permutevar8x32_ps(_mm256_add_ps(acc[r], macc[r]), natural);
      store_group(a, r0 + r, 8 * g, valid, v);
    }
  }
}

// Q8_0: one row per 32-byte load (sign trick); hadd pairs of rows, then of pairs, then the
// two lanes: the 8 rows' sums in natural order.
template <int R>
void dot_x8_q8_rows(const QuantDotArgs& a, int r0) {
  constexpr int kBlock = 272;
  const __m256i ones = _mm256_set1_epi16(1);
  const int groups = (a.n + 7) / 8;
  for (int g = 0; g < groups; ++g) {
    const uint8_t* grp = a.w + size_t(g) * a.w_stride;
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int b = 0; b < a.kb; ++b) {
      const uint8_t* blk = grp + size_t(b) * kBlock;
      for (int off = 0; off < kBlock; off += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(blk + 2048 + off), _MM_HINT_T1);
      }
      const __m256 d8 = _mm256_cvtph_ps(load16(blk));
      __m256i x[R], h[4][R];
      for (int r = 0; r < R; ++r) {
        x[r] = load32(reinterpret_cast<const uint8_t*>(a.xq) +
                      (size_t(r0 + r) * a.x_stride + size_t(b)) * kQuantSub);
      }
      for (int p = 0; p < 4; ++p) {
        const __m256i w0 = load32(blk + 16 + 64 * p), w1 = load32(blk + 48 + 64 * p);
        const __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
        for (int r = 0; r < R; ++r) {
          const __m256i p0 =
              _mm256_madd_epi16(_mm256_maddubs_epi16(a0, _mm256_sign_epi8(x[r], w0)), ones);
          const __m256i p1 =
              _mm256_madd_epi16(_mm256_maddubs_epi16(a1, _mm256_sign_epi8(x[r], w1)), ones);
          h[p][r] = _mm256_hadd_epi32(p0, p1);
        }
      }
      for (int r = 0; r < R; ++r) {
        const size_t xb = size_t(r0 + r) * a.x_stride + size_t(b);
        const __m256i e = _mm256_hadd_epi32(h[0][r], h[1][r]);
        const __m256i f = _mm256_hadd_epi32(h[2][r], h[3][r]);
        const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(e, f, 0x20),
                                              _mm256_permute2x128_si256(e, f, 0x31));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums),
                                 _mm256_mul_ps(d8, _mm256_set1_ps(a.xd[xb])), acc[r]);
      }
    }
    const int valid = a.n - 8 * g < 8 ? a.n - 8 * g : 8;
    for (int r = 0; r < R; ++r) store_group(a, r0 + r, 8 * g, valid, acc[r]);
  }
}

// Sums of 8 rows' vectors of 8 int32 partial sums (h[p] = hadd(row 2p, row 2p + 1)), in
// natural row order.
inline __m256i reduce_rows(const __m256i h[4]) {
  const __m256i e = _mm256_hadd_epi32(h[0], h[1]);
  const __m256i f = _mm256_hadd_epi32(h[2], h[3]);
  return _mm256_add_epi32(_mm256_permute2x128_si256(e, f, 0x20),
                          _mm256_permute2x128_si256(e, f, 0x31));
}

inline __m256 bytes8_to_ps(const uint8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// Q4_K / Q5_K (x8 layout, kernels/common/quant_blocks.h): one 32-byte load per row holds two
// sub-blocks (low nibbles: sub-block 2c, high: 2c + 1), each a full row vector against its
// activation sub-block; the 8 rows' scales and mins of a sub-block are one 8-byte load. Q5_K:
// bit s of a row's qh byte l is value l's fifth bit in sub-block s.
template <bool kFive, int R>
void dot_x8_qk_rows(const QuantDotArgs& a, int r0) {
  constexpr int kBlock = kFive ? quant::kQ5KX8Bytes : quant::kQ4KX8Bytes;
  constexpr int kQs = kFive ? 416 : 160;
  const __m256i one = _mm256_set1_epi8(1);
  const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  const int groups = (a.n + 7) / 8, supers = a.kb / 8;
  for (int g = 0; g < groups; ++g) {
    const uint8_t* grp = a.w + size_t(g) * a.w_stride;
    __m256 acc[R], macc[R];
    for (int r = 0; r < R; ++r) acc[r] = macc[r] = _mm256_setzero_ps();
    for (int sb = 0; sb < supers; ++sb) {
      const uint8_t* blk = grp + size_t(sb) * kBlock;
      const __m256 d8 = _mm256_cvtph_ps(load16(blk));
      const __m256 dmin8 = _mm256_cvtph_ps(load16(blk + 16));
      for (int c = 0; c < 4; ++c) {
        for (int off = 0; off < kBlock / 4; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(blk + 2048 + kBlock / 4 * c + off),
                       _MM_HINT_T1);
        }
        const int s0 = 2 * c, s1 = 2 * c + 1;
        __m256i xlo[R], xhi[R], hl[4][R], hh[4][R];
        for (int r = 0; r < R; ++r) {
          const uint8_t* x = reinterpret_cast<const uint8_t*>(a.xq) +
                             (size_t(r0 + r) * a.x_stride + size_t(8 * sb + s0)) * kQuantSub;
          xlo[r] = load32(x);
          xhi[r] = load32(x + kQuantSub);
        }
        for (int p = 0; p < 4; ++p) {
          const __m256i v0 = load32(blk + kQs + 128 * (2 * p) + 32 * c);
          const __m256i v1 = load32(blk + kQs + 128 * (2 * p + 1) + 32 * c);
          __m256i l0 = _mm256_and_si256(v0, m4), l1 = _mm256_and_si256(v1, m4);
          __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4);
          __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4);
          if constexpr (kFive) {  // bits 2c and 2c + 1 of each qh byte, moved to bit 4
            const __m256i q0 = load32(blk + 160 + 32 * (2 * p)),
                          q1 = load32(blk + 160 + 32 * (2 * p + 1));
            const __m128i s0 = _mm_cvtsi32_si128(2 * c), s1 = _mm_cvtsi32_si128(2 * c + 1);
            const auto bit4 = [&](__m256i qh, __m128i sh) {
              return _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, sh), one), 4);
            };
            l0 = _mm256_or_si256(l0, bit4(q0, s0));
            l1 = _mm256_or_si256(l1, bit4(q1, s0));
            h0 = _mm256_or_si256(h0, bit4(q0, s1));
            h1 = _mm256_or_si256(h1, bit4(q1, s1));
          }
          for (int r = 0; r < R; ++r) {
            hl[p][r] = _mm256_hadd_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(l0, xlo[r]), ones),
                                         _mm256_madd_epi16(_mm256_maddubs_epi16(l1, xlo[r]), ones));
            hh[p][r] = _mm256_hadd_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(h0, xhi[r]), ones),
                                         _mm256_madd_epi16(_mm256_maddubs_epi16(h1, xhi[r]), ones));
          }
        }
        const __m256 sc0 = _mm256_mul_ps(d8, bytes8_to_ps(blk + 32 + 8 * s0));
        const __m256 sc1 = _mm256_mul_ps(d8, bytes8_to_ps(blk + 32 + 8 * s1));
        const __m256 mn0 = _mm256_mul_ps(dmin8, bytes8_to_ps(blk + 96 + 8 * s0));
        const __m256 mn1 = _mm256_mul_ps(dmin8, bytes8_to_ps(blk + 96 + 8 * s1));
        for (int r = 0; r < R; ++r) {
          __m256i lo4[4], hi4[4];
          for (int p = 0; p < 4; ++p) lo4[p] = hl[p][r], hi4[p] = hh[p][r];
          const size_t xb = size_t(r0 + r) * a.x_stride + size_t(8 * sb + s0);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce_rows(lo4)),
                                   _mm256_mul_ps(sc0, _mm256_set1_ps(a.xd[xb])), acc[r]);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce_rows(hi4)),
                                   _mm256_mul_ps(sc1, _mm256_set1_ps(a.xd[xb + 1])), acc[r]);
          macc[r] = _mm256_fmadd_ps(mn0, _mm256_set1_ps(a.xs[xb]), macc[r]);
          macc[r] = _mm256_fmadd_ps(mn1, _mm256_set1_ps(a.xs[xb + 1]), macc[r]);
        }
      }
    }
    const int valid = a.n - 8 * g < 8 ? a.n - 8 * g : 8;
    for (int r = 0; r < R; ++r)
      store_group(a, r0 + r, 8 * g, valid, _mm256_sub_ps(acc[r], macc[r]));
  }
}

// Q6_K (x8 layout): one row vector per sub-block (6-bit values centred by -32, sign trick);
// the per-16 int scales of the 8 rows, side by side in the layout, are spread to each row's
// two halves by one byte shuffle and applied in vpmaddwd, so the integer sums stay exact.
template <int R>
void dot_x8_q6k_rows(const QuantDotArgs& a, int r0) {
  constexpr int kBlock = 1680;
  const __m256i m4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
  const __m256i c32 = _mm256_set1_epi8(32);
  const int groups = (a.n + 7) / 8, supers = a.kb / 8;
  for (int g = 0; g < groups; ++g) {
    const uint8_t* grp = a.w + size_t(g) * a.w_stride;
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int sb = 0; sb < supers; ++sb) {
      const uint8_t* blk = grp + size_t(sb) * kBlock;
      const __m256 d8 = _mm256_cvtph_ps(load16(blk));
      for (int s = 0; s < 8; ++s) {
        for (int off = 0; off < 256; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(blk + 2048 + 210 * s + off), _MM_HINT_T1);
        }
        const int h = s / 4, t = s % 4;
        // int16 lanes 0..7: scale 8h + 2t of rows 0..7; lanes 8..15: scale 8h + 2t + 1
        const __m256i sc = _mm256_cvtepi8_epi16(load16(blk + 16 + 8 * (8 * h + 2 * t)));
        const __m128i shift = _mm_cvtsi32_si128(2 * t);
        __m256i x[R], hsum[4][R];
        for (int r = 0; r < R; ++r) {
          x[r] = load32(reinterpret_cast<const uint8_t*>(a.xq) +
                        (size_t(r0 + r) * a.x_stride + size_t(8 * sb + s)) * kQuantSub);
        }
        for (int p = 0; p < 4; ++p) {
          __m256i prod[2][R];
          for (int k = 0; k < 2; ++k) {
            const int i = 2 * p + k;
            const __m256i ql = load32(blk + 144 + 128 * i + 64 * h + 32 * (t & 1));
            const __m256i nib = (t >> 1) ? _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
                                         : _mm256_and_si256(ql, m4);
            const __m256i two = _mm256_and_si256(
                _mm256_srl_epi16(load32(blk + 1168 + 64 * i + 32 * h), shift), three);
            const __m256i q = _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_slli_epi16(two, 4)), c32);
            const __m256i sci =
                _mm256_shuffle_epi8(sc, _mm256_set1_epi16(short(0x0100 + 0x0202 * i)));
            const __m256i aq = _mm256_sign_epi8(q, q);
            for (int r = 0; r < R; ++r) {
              prod[k][r] =
                  _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(x[r], q)), sci);
            }
          }
          for (int r = 0; r < R; ++r) hsum[p][r] = _mm256_hadd_epi32(prod[0][r], prod[1][r]);
        }
        for (int r = 0; r < R; ++r) {
          __m256i rows4[4];
          for (int p = 0; p < 4; ++p) rows4[p] = hsum[p][r];
          const size_t xb = size_t(r0 + r) * a.x_stride + size_t(8 * sb + s);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce_rows(rows4)),
                                   _mm256_mul_ps(d8, _mm256_set1_ps(a.xd[xb])), acc[r]);
        }
      }
    }
    const int valid = a.n - 8 * g < 8 ? a.n - 8 * g : 8;
    for (int r = 0; r < R; ++r) store_group(a, r0 + r, 8 * g, valid, acc[r]);
  }
}

// Activation rows two at a time (more would spill the 16 vector registers).
template <void (*One)(const QuantDotArgs&, int), void (*Two)(const QuantDotArgs&, int)>
void dot_x8(const QuantDotArgs& a) {
  int r = 0;
  for (; r + 2 <= a.rows; r += 2) Two(a, r);
  if (r < a.rows) One(a, r);
}

void quantize_act(int k, const float* x, int kb, int8_t* q, float* d, float* s) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  alignas(32) float tail[kQuantSub];
  for (int b = 0; b < kb; ++b) {
    const int k0 = b * kQuantSub;
    const float* src = x + k0;
    if (k - k0 < kQuantSub) {  // the last, partial sub-block (or padding): zeros past k
      const int n = k > k0 ? k - k0 : 0;
      for (int l = 0; l < kQuantSub; ++l) tail[l] = l < n ? src[l] : 0.0f;
      src = tail;
    }
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(src + 8 * i);
      amax = _mm256_max_ps(amax, _mm256_and_ps(v[i], abs_mask));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float db = _mm_cvtss_f32(m) / 127.0f;
    const __m256 inv = _mm256_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    __m256i iv[4];
    __m256i sum = _mm256_setzero_si256();
    for (int i = 0; i < 4; ++i) {
      iv[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));  // nearest even (MXCSR default)
      sum = _mm256_add_epi32(sum, iv[i]);
    }
    const __m256i p16 =
        _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
    const __m256i bytes =
        _mm256_permutevar8x32_epi32(p16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k0), bytes);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    d[b] = db;
    s[b] = db * float(_mm_cvtsi128_si32(s4));
  }
}

}  // namespace

const QuantKernels& quant_kernels() {
  static const QuantKernels table{
      "quant_dot__avx2",
      4,
      &quantize_act,
      {&dot<Q8_0>, &dot<Q4_0>, &dot<Q4_1>, &dot<Q5_0>, &dot<Q5_1>, &dot<QK45<false>>,
       &dot<QK45<true>>, &dot<Q6_K>},
      {&dot_x8<&dot_x8_q8_rows<1>, &dot_x8_q8_rows<2>>,
       &dot_x8<&dot_x8_q4_rows<false, false, 1>, &dot_x8_q4_rows<false, false, 2>>,
       &dot_x8<&dot_x8_q4_rows<true, false, 1>, &dot_x8_q4_rows<true, false, 2>>,
       &dot_x8<&dot_x8_q4_rows<false, true, 1>, &dot_x8_q4_rows<false, true, 2>>,
       &dot_x8<&dot_x8_q4_rows<true, true, 1>, &dot_x8_q4_rows<true, true, 2>>,
       &dot_x8<&dot_x8_qk_rows<false, 1>, &dot_x8_qk_rows<false, 2>>,
       &dot_x8<&dot_x8_qk_rows<true, 1>, &dot_x8_qk_rows<true, 2>>,
       &dot_x8<&dot_x8_q6k_rows<1>, &dot_x8_q6k_rows<2>>},
      &quant::dequantize_panel,
  };
  return table;
}

}  // namespace pyengine::kernels::avx2
