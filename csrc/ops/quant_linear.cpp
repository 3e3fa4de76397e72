#include "ops/quant_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/by_level.h"
#include "kernels/common/quant_blocks.h"
#include "ops/f32_gemm.h"
#include "ops/int_math.h"
#include "runtime/thread_scratch.h"

namespace pyengine::ops {

using kernels::GemmEpilogue;
using kernels::kQuantSub;
using kernels::quant_type_info;
namespace quant = kernels::quant;

const QuantKernels& quant_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::quant_kernels, &kernels::avx2::quant_kernels,
                       &kernels::avx2::quant_kernels, nullptr);
}

std::optional<QuantType> parse_quant_type(const std::string& name) {
  for (int t = 0; t < kernels::kQuantTypeCount; ++t) {
    if (name == kernels::kQuantTypes[t].name) return QuantType(t);
  }
  return std::nullopt;
}

size_t quant_row_bytes(QuantType t, int64_t k) {
  const auto& info = quant_type_info(t);
  return size_t(ceil_div(k, info.block_elems)) * size_t(info.block_bytes);
}

bool quant_can_encode(QuantType t) { return t == QuantType::kQ8_0 || t == QuantType::kQ4_0; }

namespace {

// One block of 32 values (zeros past `n`) in Q8_0 or Q4_0, as ggml's reference quantizers.
void encode_block(QuantType t, const float* v, uint8_t* dst) {
  if (t == QuantType::kQ8_0) {
    float amax = 0.0f;
    for (int l = 0; l < 32; ++l) amax = std::max(amax, std::fabs(v[l]));
    const float d = amax / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = quant::f32_to_fp16(d);
    std::memcpy(dst, &dh, 2);
    for (int l = 0; l < 32; ++l) dst[2 + l] = uint8_t(int8_t(std::round(v[l] * inv)));
    return;
  }
  float amax = 0.0f, max = 0.0f;  // the value of largest magnitude, with its sign (first wins)
  for (int l = 0; l < 32; ++l) {
    if (amax < std::fabs(v[l])) {
      amax = std::fabs(v[l]);
      max = v[l];
    }
  }
  const float d = max / -8.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
  const uint16_t dh = quant::f32_to_fp16(d);
  std::memcpy(dst, &dh, 2);
  for (int l = 0; l < 16; ++l) {
    const int lo = std::min(15, int(int8_t(v[l] * inv + 8.5f)));
    const int hi = std::min(15, int(int8_t(v[l + 16] * inv + 8.5f)));
    dst[2 + l] = uint8_t(lo | (hi << 4));
  }
}

// Panel source of the widened path: columns [j * nr, j * nr + nr) = rows of W, values
// [p0, p0 + kc), dequantized into this thread's scratch as [kc][nr].
struct WidenContext {
  const QuantLinear* lin;
  int nr;
};

const float* widened_slice(const void* ctx, int64_t j, int64_t p0, int kc) {
  const auto& w = *static_cast<const WidenContext*>(ctx);
  const QuantLinear& lin = *w.lin;
  const auto& info = quant_type_info(lin.type());
  const int subs = info.block_elems / kQuantSub;
  float* dst = runtime::thread_scratch<runtime::kScratchQuantWidened>(size_t(kc) * size_t(w.nr));
  const int64_t sb0 = p0 / kQuantSub, sb1 = ceil_div(p0 + kc, kQuantSub);
  quant::SubBlock sb;
  for (int c = 0; c < w.nr; ++c) {
    const int64_t r = j * w.nr + c;
    if (r >= lin.out_features()) {
      for (int p = 0; p < kc; ++p) dst[size_t(p) * w.nr + c] = 0.0f;
      continue;
    }
    // the storage blocks covering [p0, p0 + kc), in the format's own layout
    const int64_t b0 = sb0 / subs, b1 = ceil_div(sb1, subs);
    thread_local std::vector<uint8_t> blocks;
    blocks.resize(size_t(b1 - b0) * size_t(info.block_bytes));
    lin.copy_blocks(r, b0, b1, blocks.data());
    for (int64_t s = sb0; s < sb1; ++s) {
      quant::decode_sub(lin.type(), blocks.data() + size_t(s / subs - b0) * info.block_bytes,
                        int(s % subs), sb);
      const int64_t l0 = std::max<int64_t>(0, p0 - s * kQuantSub);
      const int64_t l1 = std::min<int64_t>(kQuantSub, p0 + kc - s * kQuantSub);
      for (int64_t l = l0; l < l1; ++l) {
        const float v = sb.value(int(l));
        dst[size_t(s * kQuantSub + l - p0) * w.nr + c] = v;
      }
    }
  }
  return dst;
}

}  // namespace

void quantize_rows(QuantType t, const float* w, int64_t stride_out, int64_t stride_in, int64_t n,
                   int64_t k, uint8_t* dst, runtime::ThreadPool& pool) {
  const size_t row_bytes = quant_row_bytes(t, k);
  const int block_bytes = quant_type_info(t).block_bytes;
  pool.parallel_for(n, [&](int64_t o) {
    float v[32];
    for (int64_t b = 0; b * 32 < k; ++b) {
      for (int l = 0; l < 32; ++l) {
        const int64_t i = b * 32 + l;
        v[l] = i < k ? w[o * stride_out + i * stride_in] : 0.0f;
      }
      encode_block(t, v, dst + size_t(o) * row_bytes + size_t(b) * block_bytes);
    }
  });
}

void dequantize_row(QuantType t, const uint8_t* row, int64_t k, float* out) {
  const auto& info = quant_type_info(t);
  const int subs = info.block_elems / kQuantSub;
  quant::SubBlock sb;
  for (int64_t s = 0; s * kQuantSub < k; ++s) {
    quant::decode_sub(t, row + size_t(s / subs) * info.block_bytes, int(s % subs), sb);
    const int64_t n = std::min<int64_t>(kQuantSub, k - s * kQuantSub);
    for (int64_t l = 0; l < n; ++l) {
      out[s * kQuantSub + l] = sb.value(int(l));
    }
  }
}

QuantLinear::QuantLinear(QuantType t, int64_t n, int64_t k, const float* bias, cpu::IsaLevel level,
                         bool allocate)
    : type_(t),
      level_(level),
      kernels_(quant_kernels(level)),
      f32_(f32_gemm_kernels(level)),
      n_(n),
      k_(k),
      kb_(ceil_div(k, quant_type_info(t).block_elems) *
          (quant_type_info(t).block_elems / kQuantSub)),
      row_bytes_(quant_row_bytes(t, k)),
      x8_(kernels_.dot_x8[int(t)] != nullptr && quant::has_x8_layout(t)),
      group_stride_(size_t(ceil_div(k, quant_type_info(t).block_elems)) *
                    size_t(quant::x8_block_bytes(t))),
      stored_bytes_(x8_ ? size_t(ceil_div(n, 8)) * group_stride_ : size_t(n) * row_bytes_),
      data_(allocate ? (stored_bytes_ + 3) / 4 : 0) {
  if (bias != nullptr) {
    bias_ = runtime::AlignedBuffer(size_t(n));
    std::copy(bias, bias + n, bias_.data());
  }
}

void QuantLinear::store_rows(const uint8_t* src, size_t src_stride) {
  uint8_t* dst = data_mut();
  runtime::ThreadPool& pool = runtime::ThreadPool::instance();
  if (!x8_) {
    pool.parallel_for(n_, [&](int64_t o) {
      std::memcpy(dst + size_t(o) * row_bytes_, src + size_t(o) * src_stride, row_bytes_);
    });
    return;
  }
  const int bb = quant_type_info(type_).block_bytes;
  const int64_t blocks = int64_t(row_bytes_) / bb;
  pool.parallel_for(ceil_div(n_, 8), [&](int64_t g) {
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* rows[8];
      for (int i = 0; i < 8; ++i) {
        const int64_t o = 8 * g + i;
        rows[i] = o < n_ ? src + size_t(o) * src_stride + size_t(b) * bb : nullptr;
      }
      quant::x8_pack(type_, rows,
                     dst + size_t(g) * group_stride_ + size_t(b) * quant::x8_block_bytes(type_));
    }
  });
}

void QuantLinear::copy_blocks(int64_t r, int64_t b0, int64_t b1, uint8_t* dst) const {
  const int bb = quant_type_info(type_).block_bytes;
  if (!x8_) {
    std::memcpy(dst, data() + size_t(r) * row_bytes_ + size_t(b0) * bb, size_t(b1 - b0) * bb);
    return;
  }
  const uint8_t* group = data() + size_t(r / 8) * group_stride_;
  for (int64_t b = b0; b < b1; ++b) {
    quant::x8_unpack(type_, group + size_t(b) * quant::x8_block_bytes(type_), int(r % 8),
                     dst + size_t(b - b0) * bb);
  }
}

void QuantLinear::dequantize_row_at(int64_t r, float* out) const {
  if (!x8_) {
    dequantize_row(type_, data() + size_t(r) * row_bytes_, k_, out);
    return;
  }
  thread_local std::vector<uint8_t> row;
  row.resize(row_bytes_);
  copy_blocks(r, 0, int64_t(row_bytes_) / quant_type_info(type_).block_bytes, row.data());
  dequantize_row(type_, row.data(), k_, out);
}

QuantLinear::QuantLinear(QuantType t, const uint8_t* data, size_t src_stride, int64_t n, int64_t k,
                         const float* bias, cpu::IsaLevel level)
    : QuantLinear(t, n, k, bias, level) {
  store_rows(data, src_stride);
}

QuantLinear QuantLinear::borrow_packed(QuantType t, const void* packed, size_t packed_bytes,
                                       int64_t n, int64_t k, const float* bias,
                                       cpu::IsaLevel level) {
  QuantLinear lin(t, n, k, bias, level, /*allocate=*/false);
  if (packed_bytes != lin.stored_bytes_) {
    throw std::invalid_argument("packed weights of " + std::to_string(packed_bytes) +
                                " bytes; this level's layout of " + quant_type_info(t).name + " [" +
                                std::to_string(n) + ", " + std::to_string(k) + "] takes " +
                                std::to_string(lin.stored_bytes_));
  }
  lin.data_ = runtime::AlignedBuffer::borrow(packed, (packed_bytes + 3) / 4);
  return lin;
}

QuantLinear QuantLinear::from_f32(QuantType t, const float* w, int64_t stride_out,
                                  int64_t stride_in, int64_t n, int64_t k, const float* bias,
                                  cpu::IsaLevel level) {
  QuantLinear lin(t, n, k, bias, level);
  std::vector<uint8_t> rows(lin.row_bytes_ * size_t(n));
  quantize_rows(t, w, stride_out, stride_in, n, k, rows.data(), runtime::ThreadPool::instance());
  lin.store_rows(rows.data(), lin.row_bytes_);
  return lin;
}

QuantLinear::Path QuantLinear::path(int64_t rows, bool batch_invariant) const {
  return batch_invariant || rows > kDotMaxRows ? Path::kWidened : Path::kDot;
}

void QuantLinear::forward(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
                          const float* residual, size_t ldr, bool batch_invariant) const {
  if (rows <= 0 || n_ <= 0) return;
  if (path(rows, batch_invariant) == Path::kDot) {
    dot_path(rows, x, ldx, y, ldy, residual, ldr);
  } else {
    widened_path(rows, x, ldx, y, ldy, residual, ldr);
  }
}

void QuantLinear::dot_path(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
                           const float* residual, size_t ldr) const {
  const size_t kb = size_t(kb_);
  // x quantized: rows x kb sub-blocks of 32 int8, then d and s per sub-block.
  float* scratch = runtime::thread_scratch<runtime::kScratchQuantAct>(size_t(rows) * kb * 10 + 1);
  int8_t* xq = reinterpret_cast<int8_t*>(scratch);
  float* xd = scratch + size_t(rows) * kb * 8;
  float* xs = xd + size_t(rows) * kb;
  for (int64_t r = 0; r < rows; ++r) {
    kernels_.quantize_act(int(k_), x + r * ldx, int(kb), xq + r * kb * kQuantSub, xd + r * kb,
                          xs + r * kb);
  }
  runtime::ThreadPool& pool = runtime::ThreadPool::instance();
  // Tasks: runs of rows of W of ~32 KB (L1/L2-resident while the row groups sweep them), and
  // at least a few per thread; whole groups of 8 in the x8 layout.
  int64_t per_task = std::max<int64_t>(8, int64_t(32 * 1024 / std::max<size_t>(1, row_bytes_)));
  per_task =
      std::min(per_task, std::max<int64_t>(8, ceil_div(n_, 4 * int64_t(pool.num_threads()))));
  if (x8_) per_task = ceil_div(per_task, 8) * 8;
  const int64_t tasks = ceil_div(n_, per_task);
  const bool has_ep = has_bias() || residual != nullptr;
  const kernels::QuantDotFn fn = x8_ ? kernels_.dot_x8[int(type_)] : kernels_.dot[int(type_)];
  pool.parallel_for(tasks, [&](int64_t t) {
    const int64_t j0 = t * per_task, j1 = std::min(n_, j0 + per_task);
    const uint8_t* w =
        x8_ ? data() + size_t(j0 / 8) * group_stride_ : data() + size_t(j0) * row_bytes_;
    for (int64_t r0 = 0; r0 < rows; r0 += kernels_.max_rows) {
      const int rr = int(std::min<int64_t>(kernels_.max_rows, rows - r0));
      const GemmEpilogue ep{has_bias() ? bias_.data() + j0 : nullptr,
                            residual != nullptr ? residual + r0 * ldr + j0 : nullptr, ldr};
      const kernels::QuantDotArgs a{rr,
                                    int(j1 - j0),
                                    int(kb),
                                    w,
                                    x8_ ? group_stride_ : row_bytes_,
                                    xq + size_t(r0) * kb * kQuantSub,
                                    xd + size_t(r0) * kb,
                                    xs + size_t(r0) * kb,
                                    kb,
                                    y + r0 * ldy + j0,
                                    ldy,
                                    has_ep ? &ep : nullptr};
      fn(a);
    }
  });
}

void QuantLinear::widened_path(int64_t rows, const float* x, size_t ldx, float* y, size_t ldy,
                               const float* residual, size_t ldr) const {
  runtime::ThreadPool& pool = runtime::ThreadPool::instance();
  const GemmArgs<float> g{
      rows, n_, k_, x, ldx, nullptr, y, ldy, has_bias() ? bias_.data() : nullptr, residual, ldr};
  const size_t packed = f32_packed_b_size(n_, k_, f32_.nr);
  if (rows >= kDequantizeOnceRows && packed * sizeof(float) <= kDequantizeOnceBytes) {
    // Many rows: the whole weight dequantized once, in parallel, into the fp32 kernels' panel
    // layout (the slice source below would dequantize it again for every block of mc rows).
    // The values and the blocking are the slice path's, so a row's result is the same either way.
    float* b = runtime::thread_scratch<runtime::kScratchQuantDequantized>(packed);
    const int nr = f32_.nr;
    const size_t stride = x8_ ? group_stride_ : row_bytes_;
    pool.parallel_for(ceil_div(n_, nr), [&](int64_t j) {
      float* panel = b + size_t(j) * size_t(k_) * size_t(nr);
      const int rows = int(std::min<int64_t>(nr, n_ - j * nr));
      kernels_.dequantize_panel(type_, x8_, data(), stride, j * nr, rows, k_, panel, nr);
      for (int64_t p = 0; p < k_; ++p) std::fill(panel + p * nr + rows, panel + p * nr + nr, 0.0f);
    });
    f32_gemm_blocked(f32_, g.with_b<float>(b), F32PanelSource{}, pool);
    return;
  }
  const WidenContext ctx{this, f32_.nr};
  f32_gemm_blocked(f32_, g, F32PanelSource{&widened_slice, &ctx}, pool);
}

void QuantLinear::gather_rows(const int64_t* ids, int64_t count, float* out, size_t ldo) const {
  for (int64_t i = 0; i < count; ++i) dequantize_row_at(ids[i], out + i * ldo);
}

}  // namespace pyengine::ops
