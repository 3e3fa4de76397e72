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

namespace pyengine::kernels::quant {

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

}  // namespace pyengine::kernels::quant
