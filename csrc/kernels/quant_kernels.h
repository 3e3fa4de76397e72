// Kernels for Linear layers whose fixed weights stay in a quantized block format (GGUF's
// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; our "int8" and "q4" are Q8_0 and Q4_0).
// Portable header: no intrinsics here.
//
// Weights: W[N, K] row-major, each row ceil(K / block_elems) blocks in the file's own block
// layout (kernels/common/quant_blocks.h), so a GGUF tensor is copied, never re-encoded.
//
// Activations: each row of x is quantized per 32 values (one "sub-block"), llama.cpp's Q8_1
// pairing: q = round_half_even(x / d) in [-127, 127] with d = max|x| / 127 (fp32), and
// s = d * sum(q) for the formats with an offset (w = d_w * q_w + m_w gives
// sum w * x = d_w * d * sum(q_w * q) + m_w * s). Every format is split into sub-blocks of 32
// values (K-quants: 8 per super-block of 256; Q6_K adds an int scale per 16 values), so one
// activation format serves all. The integer part of each sub-block product is exact.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/f32_gemm_kernels.h"

namespace pyengine::kernels {

// Values per activation sub-block (and per weight sub-block).
inline constexpr int kQuantSub = 32;

enum class QuantType : int { kQ8_0, kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ4_K, kQ5_K, kQ6_K, kCount };
inline constexpr int kQuantTypeCount = int(QuantType::kCount);

struct QuantTypeInfo {
  const char* name;  // GGUF's name, "Q4_K"
  int ggml_type;     // GGUF's type id
  int block_elems;   // values per block (32 or 256)
  int block_bytes;
};

inline constexpr QuantTypeInfo kQuantTypes[kQuantTypeCount] = {
    {"Q8_0", 8, 32, 34}, {"Q4_0", 2, 32, 18},    {"Q4_1", 3, 32, 20},    {"Q5_0", 6, 32, 22},
    {"Q5_1", 7, 32, 24}, {"Q4_K", 12, 256, 144}, {"Q5_K", 13, 256, 176}, {"Q6_K", 14, 256, 210},
};
inline const QuantTypeInfo& quant_type_info(QuantType t) { return kQuantTypes[int(t)]; }

// One call of a dot kernel: y[r, j] = x_r . W_j (+ epilogue) for r < rows, j < n.
//   w: weight row j at w + j * w_stride bytes; kb sub-blocks of 32 per row (kb * 32 >= K, a
//      whole number of the format's blocks).
//   xq/xd/xs: activation row r's sub-block b at xq + (r * x_stride + b) * 32, xd[r * x_stride
//      + b], xs[r * x_stride + b].
//   y: row stride ldy. ep (or nullptr): bias[j] and residual[r * ldr + j] added at the store;
//      the residual may be y itself.
struct QuantDotArgs {
  int rows, n, kb;
  const uint8_t* w;
  size_t w_stride;
  const int8_t* xq;
  const float* xd;
  const float* xs;
  size_t x_stride;
  float* y;
  size_t ldy;
  const GemmEpilogue* ep;
};
using QuantDotFn = void (*)(const QuantDotArgs& a);

// Quantizes one activation row x[0:k] into kb >= ceil(k / 32) sub-blocks (zeros past k).
using QuantizeActFn = void (*)(int k, const float* x, int kb, int8_t* q, float* d, float* s);

// The interleaved ("x8") layout of the formats whose level has an x8 kernel: rows in groups
// of 8 (N padded with zero rows), block b of group g at g * group_stride + b * 8 * block_bytes,
// holding the 8 rows' fp16 scales side by side, then their quants (kernels/common/
// quant_blocks.h, x8_pack). The same bytes as the file, reordered once at load so that one
// vector load gives 8 rows' scales and the integer sums of 8 rows reduce to one vector.
// Args: w = the first group, w_stride = group_stride, n = rows (the last group may be partial:
// only rows < n are stored).
struct QuantKernels {
  const char* name;  // e.g. "quant_dot__avx2"
  int max_rows;      // rows one dot call accepts (1 <= rows <= max_rows)
  QuantizeActFn quantize_act;
  QuantDotFn dot[kQuantTypeCount];     // row-major blocks
  QuantDotFn dot_x8[kQuantTypeCount];  // x8 layout; nullptr where the level has none
  // Rows [r0, r0 + rows) of W dequantized into columns [0, rows) of an fp32 panel [k][nr] (the
  // fp32 micro-kernel's B layout). data/stride: the row layout, or the x8 layout when x8.
  void (*dequantize_panel)(QuantType t, bool x8, const uint8_t* data, size_t stride, int64_t r0,
                           int rows, int64_t k, float* panel, int nr);
};

namespace generic {
const QuantKernels& quant_kernels();
}
namespace avx2 {
const QuantKernels& quant_kernels();
}

}  // namespace pyengine::kernels
