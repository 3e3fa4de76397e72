// y = x @ W^T + bias (+ residual): a fixed-weight layer whose weight is packed once, at
// construction, into the layout of its format's kernels; x, y, bias and residual are fp32.
//   F32Linear:  fp32 panels (ops/f32_gemm.h)
//   Bf16Linear: the weight rounded to bf16 (nearest even), bf16 panels (ops/bf16_gemm.h)
#pragma once
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ops/bf16_gemm.h"
#include "ops/f32_gemm.h"
#include "runtime/aligned_buffer.h"
#include "runtime/thread_pool.h"

namespace pyengine::ops {

// What a weight format supplies: its packed element, kernel table, packing and product.
struct F32Format {
  using Elem = float;
  using Kernels = F32GemmKernels;
  static const Kernels& kernels(cpu::IsaLevel level) { return f32_gemm_kernels(level); }
  static size_t packed_size(const Kernels& kt, int64_t n, int64_t k) {
    return f32_packed_b_size(n, k, kt.nr);
  }
  static void pack(const Kernels& kt, const float* w, int64_t stride_n, int64_t stride_k, int64_t n,
                   int64_t k, Elem* packed, runtime::ThreadPool& pool) {
    f32_pack_b(w, stride_n, stride_k, n, k, kt.nr, packed, pool);
  }
  static void gemm(const Kernels& kt, const GemmArgs<Elem>& g, runtime::ThreadPool& pool,
                   bool batch_invariant) {
    f32_gemm_packed(kt, g, pool, batch_invariant);
  }
};

struct Bf16Format {
  using Elem = uint16_t;
  using Kernels = Bf16GemmKernels;
  static const Kernels& kernels(cpu::IsaLevel level) { return bf16_gemm_kernels(level); }
  static size_t packed_size(const Kernels&, int64_t n, int64_t k) {
    return bf16_packed_b_size(n, k);
  }
  static void pack(const Kernels&, const float* w, int64_t stride_n, int64_t stride_k, int64_t n,
                   int64_t k, Elem* packed, runtime::ThreadPool& pool) {
    bf16_pack_b(w, stride_n, stride_k, n, k, packed, pool);
  }
  static void gemm(const Kernels& kt, const GemmArgs<Elem>& g, runtime::ThreadPool& pool,
                   bool batch_invariant) {
    bf16_gemm_packed(kt, g, pool, batch_invariant);
  }
};

template <class Format>
class PackedLinear {
 public:
  using Elem = typename Format::Elem;
  using Kernels = typename Format::Kernels;

  // weight element (o, i) at weight[o * stride_out + i * stride_in]: [out_features, in_features]
  // in torch.nn.Linear's convention, any strides. bias: [out_features] or nullptr.
  PackedLinear(const float* weight, int64_t stride_out, int64_t stride_in, int64_t out_features,
               int64_t in_features, const float* bias, cpu::IsaLevel level)
      : level_(level),
        kernels_(Format::kernels(level)),
        out_features_(out_features),
        in_features_(in_features),
        packed_elems_(Format::packed_size(kernels_, out_features, in_features)),
        packed_((packed_elems_ * sizeof(Elem) + sizeof(float) - 1) / sizeof(float)) {
    Format::pack(kernels_, weight, stride_out, stride_in, out_features, in_features, packed(),
                 runtime::ThreadPool::instance());
    if (bias != nullptr) {
      bias_ = runtime::AlignedBuffer(size_t(out_features));
      std::copy(bias, bias + out_features, bias_.data());
    }
  }

  // A layer over weights already in this level's packed layout (packed_data() of a layer made
  // at the same level): `packed` is borrowed, not copied (a pack file's memory map; the caller
  // keeps it alive and unchanged), 64-byte aligned, exactly packed_bytes long.
  PackedLinear(const void* packed, size_t packed_bytes, int64_t out_features, int64_t in_features,
               const float* bias, cpu::IsaLevel level)
      : level_(level),
        kernels_(Format::kernels(level)),
        out_features_(out_features),
        in_features_(in_features),
        packed_elems_(Format::packed_size(kernels_, out_features, in_features)) {
    if (packed_bytes != packed_elems_ * sizeof(Elem)) {
      throw std::invalid_argument(
          "packed weights of " + std::to_string(packed_bytes) + " bytes; this level's layout of [" +
          std::to_string(out_features) + ", " + std::to_string(in_features) + "] takes " +
          std::to_string(packed_elems_ * sizeof(Elem)));
    }
    packed_ =
        runtime::AlignedBuffer::borrow(packed, (packed_bytes + sizeof(float) - 1) / sizeof(float));
    if (bias != nullptr) {
      bias_ = runtime::AlignedBuffer(size_t(out_features));
      std::copy(bias, bias + out_features, bias_.data());
    }
  }

  // y[m, :] = x[m, :] @ W^T + bias + residual[m, :] for m in [0, rows). residual may be nullptr
  // or equal to y (in-place residual add); no other overlap is allowed. batch_invariant: every
  // row runs the many-row kernels, whose per-row arithmetic does not depend on the row count.
  void forward(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
               const float* residual, size_t ldr, bool batch_invariant = false) const {
    const GemmArgs<Elem> g{rows, out_features_, in_features_, x,        ldx, packed(),
                           y,    ldy,           bias_ptr(),   residual, ldr};
    Format::gemm(kernels_, g, runtime::ThreadPool::instance(), batch_invariant);
  }

  // The kernels a call with `rows` rows runs (bf16: few-row, widened or AMX tiles); the tile
  // path rounds x to bf16 as well.
  Bf16Path path(int64_t rows) const
    requires std::same_as<Format, Bf16Format>
  {
    return bf16_gemm_path(kernels_, rows);
  }
  bool rounds_input(int64_t rows) const
    requires std::same_as<Format, Bf16Format>
  {
    return path(rows) == Bf16Path::kTiles;
  }

  int64_t out_features() const { return out_features_; }
  int64_t in_features() const { return in_features_; }
  bool has_bias() const { return bias_.size() != 0; }
  cpu::IsaLevel isa_level() const { return level_; }
  const Kernels& kernels() const { return kernels_; }
  size_t packed_bytes() const { return packed_elems_ * sizeof(Elem); }
  // The packed weights (packed_bytes() bytes) and the bias ([out_features] or nullptr).
  const void* packed_data() const { return packed_.data(); }
  const float* bias_data() const { return bias_ptr(); }

 private:
  Elem* packed() { return reinterpret_cast<Elem*>(packed_.data()); }
  const Elem* packed() const { return reinterpret_cast<const Elem*>(packed_.data()); }
  const float* bias_ptr() const { return has_bias() ? bias_.data() : nullptr; }

  cpu::IsaLevel level_;
  const Kernels& kernels_;
  int64_t out_features_, in_features_;
  size_t packed_elems_;
  runtime::AlignedBuffer packed_;  // the format's panels
  runtime::AlignedBuffer bias_;    // [out] or empty
};

using F32Linear = PackedLinear<F32Format>;
using Bf16Linear = PackedLinear<Bf16Format>;

}  // namespace pyengine::ops
