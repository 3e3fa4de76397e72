// The block formats of kernels/quant_kernels.h, decoded one 32-value sub-block at a time in
// plain C++: the reference for every level's kernels, the dequantizer of the many-row path and
// of embedding rows, and the quantizers of load-time "int8" (Q8_0) and "q4" (Q4_0).
//
// A sub-block decodes to integers q[32], int scales sc[2] (one per 16 values) and floats d, m:
//   value[l] = d * sc[l / 16] * q[l] + m
// Byte layouts (GGUF / ggml, little-endian, fp16 scales):
//   Q8_0 (34 B / 32):  d, int8 q[32]                            q signed, m = 0
//   Q4_0 (18 B / 32):  d, qs[16]: q[l] = qs[l] & 15, q[l+16] = qs[l] >> 4      m = -8 d
//   Q4_1 (20 B / 32):  d, m, qs[16] as Q4_0                     m as stored
//   Q5_0 (22 B / 32):  d, qh (u32), qs[16]: q[l] |= bit l of qh << 4            m = -16 d
//   Q5_1 (24 B / 32):  d, m, qh, qs[16]
//   Q4_K (144 B / 256): d, dmin, scales[12] (6-bit sc, mn per 32), qs[128]: sub-block 2c + i
//                      is qs[32c .. 32c + 31] >> 4i & 15; d_sub = d * sc, m_sub = -dmin * mn
//   Q5_K (176 B / 256): d, dmin, scales[12], qh[32], qs[128]: as Q4_K, plus bit s of qh[l] << 4
//   Q6_K (210 B / 256): ql[128], qh[64], int8 scales[16], d: sub-block 4h + t, value l:
//                      ql[64h + 32(t & 1) + l] >> 4(t >> 1) & 15 | (qh[32h + l] >> 2t & 3) << 4,
//                      minus 32; sc = scales[8h + 2t + l / 16]
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>

#include "kernels/quant_kernels.h"

// Internal linkage: these are compiled into portable and per-ISA translation units alike, and
// the linker must never hand one level's code (AVX2 instructions) to another's callers.
namespace pyengine::kernels::quant {
namespace {

inline float fp16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in fp32
    const float v = float(mant) * 0x1p-24f;
    return std::bit_cast<float>(std::bit_cast<uint32_t>(v) | sign);
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

// Nearest even, overflow to infinity, NaN stays NaN (as numpy's astype(float16)).
inline uint16_t f32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;
  if (ax >= 0x477ff000u) return sign | 0x7c00u;          // rounds to >= 65520: infinity
  if (ax < 0x38800000u) {                                // below 2^-14: subnormal half
    const float v = std::bit_cast<float>(ax) * 0x1p24f;  // exact; in [0, 1024)
    uint32_t m = uint32_t(v);
    const float rest = v - float(m);
    if (rest > 0.5f || (rest == 0.5f && (m & 1))) ++m;
    return sign | uint16_t(m);
  }
  uint32_t m = ax - 0x38000000u;  // rebias 127 -> 15
  m += 0xfffu + ((m >> 13) & 1u);
  return sign | uint16_t(m >> 13);
}

inline float load_fp16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_f32(h);
}

struct SubBlock {
  int q[kQuantSub];
  int sc[2];
  float d, m;

  // Value l, computed in this order everywhere it is dequantized (row, panel, slice), so every
  // path multiplies by the same fp32 weights.
  float value(int l) const { return d * float(sc[l / 16]) * float(q[l]) + m; }
};

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
inline void k_scale_min(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Sub-block `sub` (0 .. block_elems / 32 - 1) of one block of type t at `blk`.
inline void decode_sub(QuantType t, const uint8_t* blk, int sub, SubBlock& o) {
  o.sc[0] = o.sc[1] = 1;
  o.d = o.m = 0.0f;
  switch (t) {
    case QuantType::kQ8_0:
      o.d = load_fp16(blk);
      for (int l = 0; l < 32; ++l) o.q[l] = int8_t(blk[2 + l]);
      return;
    case QuantType::kQ4_0:
    case QuantType::kQ4_1: {
      const bool offset = t == QuantType::kQ4_1;
      o.d = load_fp16(blk);
      o.m = offset ? load_fp16(blk + 2) : -8.0f * o.d;
      const uint8_t* qs = blk + (offset ? 4 : 2);
      for (int l = 0; l < 16; ++l) {
        o.q[l] = qs[l] & 15;
        o.q[l + 16] = qs[l] >> 4;
      }
      return;
    }
    case QuantType::kQ5_0:
    case QuantType::kQ5_1: {
      const bool offset = t == QuantType::kQ5_1;
      o.d = load_fp16(blk);
      o.m = offset ? load_fp16(blk + 2) : -16.0f * o.d;
      uint32_t qh;
      std::memcpy(&qh, blk + (offset ? 4 : 2), 4);
      const uint8_t* qs = blk + (offset ? 8 : 6);
      for (int l = 0; l < 16; ++l) {
        o.q[l] = (qs[l] & 15) | int((qh >> l) & 1) << 4;
        o.q[l + 16] = (qs[l] >> 4) | int((qh >> (l + 16)) & 1) << 4;
      }
      return;
    }
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: {
      const bool five = t == QuantType::kQ5_K;
      int sc, mn;
      k_scale_min(blk + 4, sub, sc, mn);
      o.d = load_fp16(blk) * float(sc);
      o.m = -(load_fp16(blk + 2) * float(mn));
      const uint8_t* qh = blk + 16;
      const uint8_t* qs = blk + (five ? 48 : 16) + 32 * (sub / 2);
      const int shift = 4 * (sub & 1);
      for (int l = 0; l < 32; ++l) {
        o.q[l] = (qs[l] >> shift) & 15;
        if (five) o.q[l] |= ((qh[l] >> sub) & 1) << 4;
      }
      return;
    }
    case QuantType::kQ6_K: {
      const int h = sub / 4, tt = sub % 4;
      const uint8_t* ql = blk + 64 * h + 32 * (tt & 1);
      const uint8_t* qh = blk + 128 + 32 * h;
      const int8_t* scales = reinterpret_cast<const int8_t*>(blk + 192);
      const int shift = 4 * (tt >> 1);
      for (int l = 0; l < 32; ++l) {
        o.q[l] = (((ql[l] >> shift) & 15) | (((qh[l] >> (2 * tt)) & 3) << 4)) - 32;
      }
      o.sc[0] = scales[8 * h + 2 * tt];
      o.sc[1] = scales[8 * h + 2 * tt + 1];
      o.d = load_fp16(blk + 208);
      return;
    }
    case QuantType::kCount:
      break;
  }
}

// ---- the x8 layout (kernels/quant_kernels.h) of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 --------------
// One block of 8 rows, 8 * block_bytes bytes: the rows' d (fp16) at 2 * slot, Q4_1/Q5_1's m at
// 16 + 2 * slot, Q5's 32 high bits per row (row order), then each row's quants (16 or 32 bytes)
// in row order. The 4/5-bit slot order is the order the kernel's pairwise reduction yields the
// rows' sums in: 0, 2, 4, 6, 1, 3, 5, 7.

inline bool has_x8_layout(QuantType t) {
  return t == QuantType::kQ8_0 || t == QuantType::kQ4_0 || t == QuantType::kQ4_1 ||
         t == QuantType::kQ5_0 || t == QuantType::kQ5_1 || t == QuantType::kQ4_K ||
         t == QuantType::kQ5_K || t == QuantType::kQ6_K;
}

// Q6_K's x8 block (1680 bytes, as 8 rows'): d[8] fp16 | scales[16][8 rows] int8 (the 8 rows'
// scale j side by side) | ql[8 rows][128] | qh[8 rows][64].

// Q4_K's x8 block (1184 bytes, 32 more than 8 rows' 1152: the 6-bit scales and mins unpacked
// to bytes so that a sub-block's 8 scales are one 8-byte load):
//   d[8] fp16 | dmin[8] fp16 | sc[8 sub-blocks][8 rows] u8 | mn[8][8] u8 | qs[8 rows][128]
// Q5_K's (1440 bytes, 32 more than 8 x 176): the same, with qh[8 rows][32] before qs.
inline constexpr int kQ4KX8Bytes = 1184, kQ5KX8Bytes = 1440;

inline int x8_block_bytes(QuantType t) {
  if (t == QuantType::kQ4_K) return kQ4KX8Bytes;
  if (t == QuantType::kQ5_K) return kQ5KX8Bytes;
  return 8 * quant_type_info(t).block_bytes;
}

// The 12 packed bytes of Q4_K's 6-bit scales and mins (inverse of k_scale_min).
inline void k_pack_scales(const int sc[8], const int mn[8], uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = uint8_t((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

inline int x8_slot(QuantType t, int row) {
  return t == QuantType::kQ8_0 ? row : (row % 2) * 4 + row / 2;
}

struct X8Fields {
  int m = -1, qh = -1, qs;  // offsets in the format's block (-1: absent)
  int qs_bytes;
  int x_m = -1, x_qh = -1, x_qs;  // offsets in the x8 block
};

inline X8Fields x8_fields(QuantType t) {
  X8Fields f;
  const bool offset = t == QuantType::kQ4_1 || t == QuantType::kQ5_1;
  const bool five = t == QuantType::kQ5_0 || t == QuantType::kQ5_1;
  int at = 2, x_at = 16;
  if (offset) {
    f.m = at, f.x_m = x_at;
    at += 2, x_at += 16;
  }
  if (five) {
    f.qh = at, f.x_qh = x_at;
    at += 4, x_at += 32;
  }
  f.qs = at, f.x_qs = x_at;
  f.qs_bytes = t == QuantType::kQ8_0 ? 32 : 16;
  return f;
}

// One x8 block from block b of 8 rows (src[i]: row i's block; nullptr: a zero padding row).
inline void x8_pack(QuantType t, const uint8_t* const src[8], uint8_t* dst) {
  static const uint8_t zeros[256] = {};
  if (t == QuantType::kQ6_K) {
    for (int i = 0; i < 8; ++i) {
      const uint8_t* s = src[i] != nullptr ? src[i] : zeros;
      std::memcpy(dst + 2 * i, s + 208, 2);
      for (int j = 0; j < 16; ++j) dst[16 + 8 * j + i] = s[192 + j];
      std::memcpy(dst + 144 + 128 * i, s, 128);
      std::memcpy(dst + 1168 + 64 * i, s + 128, 64);
    }
    return;
  }
  if (t == QuantType::kQ4_K || t == QuantType::kQ5_K) {
    const bool five = t == QuantType::kQ5_K;
    const int qs = five ? 416 : 160;  // the x8 block's quants
    for (int i = 0; i < 8; ++i) {
      const uint8_t* s = src[i] != nullptr ? src[i] : zeros;
      std::memcpy(dst + 2 * i, s, 2);
      std::memcpy(dst + 16 + 2 * i, s + 2, 2);
      for (int j = 0; j < 8; ++j) {
        int sc, mn;
        k_scale_min(s + 4, j, sc, mn);
        dst[32 + 8 * j + i] = uint8_t(sc);
        dst[96 + 8 * j + i] = uint8_t(mn);
      }
      if (five) std::memcpy(dst + 160 + 32 * i, s + 16, 32);
      std::memcpy(dst + qs + 128 * i, s + (five ? 48 : 16), 128);
    }
    return;
  }
  const X8Fields f = x8_fields(t);
  for (int i = 0; i < 8; ++i) {
    const uint8_t* s = src[i] != nullptr ? src[i] : zeros;
    const int slot = x8_slot(t, i);
    std::memcpy(dst + 2 * slot, s, 2);
    if (f.m >= 0) std::memcpy(dst + f.x_m + 2 * slot, s + f.m, 2);
    if (f.qh >= 0) std::memcpy(dst + f.x_qh + 4 * i, s + f.qh, 4);
    std::memcpy(dst + f.x_qs + f.qs_bytes * i, s + f.qs, size_t(f.qs_bytes));
  }
}

// Row i's block, in the format's own layout, out of one x8 block.
inline void x8_unpack(QuantType t, const uint8_t* src, int i, uint8_t* dst) {
  if (t == QuantType::kQ6_K) {
    std::memcpy(dst + 208, src + 2 * i, 2);
    for (int j = 0; j < 16; ++j) dst[192 + j] = src[16 + 8 * j + i];
    std::memcpy(dst, src + 144 + 128 * i, 128);
    std::memcpy(dst + 128, src + 1168 + 64 * i, 64);
    return;
  }
  if (t == QuantType::kQ4_K || t == QuantType::kQ5_K) {
    const bool five = t == QuantType::kQ5_K;
    std::memcpy(dst, src + 2 * i, 2);
    std::memcpy(dst + 2, src + 16 + 2 * i, 2);
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = src[32 + 8 * j + i];
      mn[j] = src[96 + 8 * j + i];
    }
    k_pack_scales(sc, mn, dst + 4);
    if (five) std::memcpy(dst + 16, src + 160 + 32 * i, 32);
    std::memcpy(dst + (five ? 48 : 16), src + (five ? 416 : 160) + 128 * i, 128);
    return;
  }
  const X8Fields f = x8_fields(t);
  const int slot = x8_slot(t, i);
  std::memcpy(dst, src + 2 * slot, 2);
  if (f.m >= 0) std::memcpy(dst + f.m, src + f.x_m + 2 * slot, 2);
  if (f.qh >= 0) std::memcpy(dst + f.qh, src + f.x_qh + 4 * i, 4);
  std::memcpy(dst + f.qs, src + f.x_qs + f.qs_bytes * i, size_t(f.qs_bytes));
}

}  // namespace
}  // namespace pyengine::kernels::quant
