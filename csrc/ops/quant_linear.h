// y = x @ W^T + bias (+ residual) with W kept in a quantized block format
// (kernels/quant_kernels.h): GGUF tensors copied as they are stored, or fp32 weights quantized
// once at load to Q8_0 ("int8") or Q4_0 ("q4"). x, y, bias and residual are fp32.
//
// Two paths, chosen per call by the row count:
//   dot:     few rows (decode). x is quantized per 32 values to int8 and each weight sub-block
//            meets it in integer arithmetic: the weights are read once, as stored (the bytes a
//            decode step reads are the file's bytes).
//   widened: many rows (prefill, encoder batches). W is dequantized to fp32 into the fp32
//            micro-kernel's panel layout (whole, once per call, or slice by slice), and x
//            stays fp32.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "cpu/isa_level.h"
#include "kernels/f32_gemm_kernels.h"
#include "kernels/quant_kernels.h"
#include "runtime/aligned_buffer.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {

using kernels::QuantKernels;
using kernels::QuantType;

// The level's dot kernels (the avx512 and amx levels run the avx2 ones: no VNNI variant yet).
const QuantKernels& quant_kernels(cpu::IsaLevel level);

// "Q4_K" -> QuantType; nullopt for a name that is not one of kernels::kQuantTypes.
std::optional<QuantType> parse_quant_type(const std::string& name);

// Bytes of one row of k values: whole blocks (k is padded up to the block size).
size_t quant_row_bytes(QuantType t, int64_t k);

// Whether quantize_rows can encode type t from fp32 (Q8_0 and Q4_0).
bool quant_can_encode(QuantType t);

// Encodes W[n, k] (element (o, i) at w[o * stride_out + i * stride_in]) as rows of type t;
// values past k are zero. ggml's reference quantizers: Q8_0 d = max|w| / 127, round half away
// from zero; Q4_0 d = -w_absmax_signed / 8, q = min(15, trunc(w / d + 8.5)). (A least-squares
// scale search for Q4_0 lowered the weights' squared error 5-10% but raised SmolLM2's
// perplexity, 18.0 -> 19.1: not kept.)
void quantize_rows(QuantType t, const float* w, int64_t stride_out, int64_t stride_in, int64_t n,
                   int64_t k, uint8_t* dst, runtime::ThreadPool& pool);

// out[0:k] = the values of one stored row (reference decoding, kernels/common/quant_blocks.h).
void dequantize_row(QuantType t, const uint8_t* row, int64_t k, float* out);

class QuantLinear {
 public:
  enum class Path { kDot, kWidened };

  // Copies n rows of `row_bytes` = quant_row_bytes(t, k) bytes each (row o at
  // data + o * src_stride) and the bias ([n] or nullptr).
  QuantLinear(QuantType t, const uint8_t* data, size_t src_stride, int64_t n, int64_t k,
              const float* bias, cpu::IsaLevel level);
  // A layer over rows already in this level's stored layout (data() of a layer of the same type,
  // shape and level: interleaved when that level's kernels interleave): `packed` is borrowed,
  // not copied (a pack file's memory map; the caller keeps it alive and unchanged), 64-byte
  // aligned, exactly packed_bytes() long.
  static QuantLinear borrow_packed(QuantType t, const void* packed, size_t packed_bytes, int64_t n,
                                   int64_t k, const float* bias, cpu::IsaLevel level);
  // Quantizes an fp32 weight (see quantize_rows).
  static QuantLinear from_f32(QuantType t, const float* w, int64_t stride_out, int64_t stride_in,
                              int64_t n, int64_t k, const float* bias, cpu::IsaLevel level);

  // y[m, :] = x[m, :] @ W^T + bias + residual[m, :] for m < rows; residual may be nullptr or y.
  // batch_invariant: the widened path for any row count.
  void forward(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
               const float* residual, size_t ldr, bool batch_invariant = false) const;

  // out[i, :] = row ids[i] of W, dequantized (an embedding table stored quantized).
  void gather_rows(const int64_t* ids, int64_t count, float* out, size_t ldo) const;
  // out[0:k] = row r of W, dequantized.
  void dequantize_row_at(int64_t r, float* out) const;
  // Blocks [b0, b1) of row r in the format's own byte layout, at dst.
  void copy_blocks(int64_t r, int64_t b0, int64_t b1, uint8_t* dst) const;

  Path path(int64_t rows, bool batch_invariant = false) const;

  QuantType type() const { return type_; }
  int64_t out_features() const { return n_; }
  int64_t in_features() const { return k_; }
  bool has_bias() const { return bias_.size() != 0; }
  cpu::IsaLevel isa_level() const { return level_; }
  const QuantKernels& kernels() const { return kernels_; }
  const kernels::F32GemmKernels& widened_kernels() const { return f32_; }
  size_t row_bytes() const { return row_bytes_; }
  size_t packed_bytes() const { return stored_bytes_; }
  // Whether rows are stored interleaved in groups of 8 (the level's x8 kernels), else as rows.
  bool interleaved() const { return x8_; }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(data_.data()); }
  const float* bias_data() const { return has_bias() ? bias_.data() : nullptr; }

  // Up to this many rows run the dot path.
  static constexpr int64_t kDotMaxRows = 16;
  // From this many rows on, a weight of at most kDequantizeOnceBytes as fp32 is dequantized
  // whole, once per call, into per-thread scratch (larger ones, e.g. a 262k-row LM head, are
  // dequantized slice by slice).
  static constexpr int64_t kDequantizeOnceRows = 64;
  static constexpr size_t kDequantizeOnceBytes = size_t(32) << 20;

 private:
  // allocate=false leaves data_ empty (borrow_packed fills it with a view).
  QuantLinear(QuantType t, int64_t n, int64_t k, const float* bias, cpu::IsaLevel level,
              bool allocate = true);
  uint8_t* data_mut() { return reinterpret_cast<uint8_t*>(data_.data()); }
  // Stores n_ rows in the format's layout (row o at src + o * src_stride), interleaving them
  // when x8_.
  void store_rows(const uint8_t* src, size_t src_stride);
  void dot_path(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
                const float* residual, size_t ldr) const;
  void widened_path(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
                    const float* residual, size_t ldr) const;

  QuantType type_;
  cpu::IsaLevel level_;
  const QuantKernels& kernels_;
  const kernels::F32GemmKernels& f32_;
  int64_t n_, k_, kb_;  // kb_: 32-value sub-blocks per row
  size_t row_bytes_;
  bool x8_;              // x8 layout: groups of 8 rows, group_stride_ bytes each
  size_t group_stride_;  // blocks per row x the x8 block's bytes
  size_t stored_bytes_;
  runtime::AlignedBuffer data_;  // n_ rows of row_bytes_, or ceil(n_ / 8) groups
  runtime::AlignedBuffer bias_;
};

}  // namespace pyengine::ops
