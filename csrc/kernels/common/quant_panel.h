// Quantized weights dequantized into the fp32 micro-kernel's panel layout (the many-row path),
// written once and compiled per ISA level: with the format a template argument, the block
// decoding of quant_blocks.h folds to straight-line code the level's flags vectorize.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/common/quant_blocks.h"

namespace pyengine::kernels::quant {
namespace {

// Rows [r0, r0 + rows) of W into columns [0, rows) of panel [k][nr]. data: W in the row layout
// (row r at r * stride) or, when x8, the x8 layout (group g at g * stride). Values are computed
// as ops::dequantize_row computes them: d * sc * q + m, in that order.
template <QuantType T>
void dequantize_panel_t(bool x8, const uint8_t* data, size_t stride, int64_t r0, int rows,
                        int64_t k, float* panel, int nr) {
  constexpr QuantTypeInfo info = kQuantTypes[int(T)];
  constexpr int subs = info.block_elems / kQuantSub;
  const int64_t blocks = (k + info.block_elems - 1) / info.block_elems;
  alignas(64) uint8_t tmp[256];
  SubBlock sb;
  float vals[kQuantSub];
  for (int i = 0; i < rows; ++i) {
    const int64_t r = r0 + i;
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* blk = data + size_t(r) * stride + size_t(b) * info.block_bytes;
      if (x8) {
        x8_unpack(T, data + size_t(r / 8) * stride + size_t(b) * x8_block_bytes(T), int(r % 8),
                  tmp);
        blk = tmp;
      }
      for (int s = 0; s < subs; ++s) {
        const int64_t p0 = b * info.block_elems + s * kQuantSub;
        if (p0 >= k) break;
        decode_sub(T, blk, s, sb);
        for (int l = 0; l < kQuantSub; ++l) {
          vals[l] = sb.value(int(l));
        }
        const int n = int(std::min<int64_t>(kQuantSub, k - p0));
        float* dst = panel + size_t(p0) * nr + i;
        for (int l = 0; l < n; ++l) dst[size_t(l) * nr] = vals[l];
      }
    }
  }
}

inline void dequantize_panel(QuantType t, bool x8, const uint8_t* data, size_t stride, int64_t r0,
                             int rows, int64_t k, float* panel, int nr) {
  using Fn = void (*)(bool, const uint8_t*, size_t, int64_t, int, int64_t, float*, int);
  static constexpr Fn by_type[kQuantTypeCount] = {
      &dequantize_panel_t<QuantType::kQ8_0>, &dequantize_panel_t<QuantType::kQ4_0>,
      &dequantize_panel_t<QuantType::kQ4_1>, &dequantize_panel_t<QuantType::kQ5_0>,
      &dequantize_panel_t<QuantType::kQ5_1>, &dequantize_panel_t<QuantType::kQ4_K>,
      &dequantize_panel_t<QuantType::kQ5_K>, &dequantize_panel_t<QuantType::kQ6_K>,
  };
  by_type[int(t)](x8, data, stride, r0, rows, k, panel, nr);
}

}  // namespace
}  // namespace pyengine::kernels::quant
