// Portable quantized-weight dot kernels: the reference arithmetic every level follows (integer
// sub-block products, then d_w * d_x and the offset term in fp32).
#include <cmath>

#include "kernels/common/quant_blocks.h"
#include "kernels/common/quant_panel.h"
#include "kernels/quant_kernels.h"

namespace pyengine::kernels::generic {
namespace {

void quantize_act(int k, const float* x, int kb, int8_t* q, float* d, float* s) {
  for (int b = 0; b < kb; ++b) {
    const int k0 = b * kQuantSub;
    const int n = k0 >= k ? 0 : (k - k0 < kQuantSub ? k - k0 : kQuantSub);
    float amax = 0.0f;
    for (int l = 0; l < n; ++l) amax = std::fmax(amax, std::fabs(x[k0 + l]));
    const float db = amax / 127.0f;
    const float inv = db != 0.0f ? 1.0f / db : 0.0f;
    int sum = 0;
    for (int l = 0; l < kQuantSub; ++l) {
      // nearest even, as the vector levels' conversion
      const int v = l < n ? int(std::nearbyint(x[k0 + l] * inv)) : 0;
      q[k0 + l] = int8_t(v);
      sum += v;
    }
    d[b] = db;
    s[b] = db * float(sum);
  }
}

template <QuantType T>
void dot(const QuantDotArgs& a) {
  const QuantTypeInfo& info = quant_type_info(T);
  const int subs = info.block_elems / kQuantSub;
  quant::SubBlock sb;
  for (int j = 0; j < a.n; ++j) {
    const uint8_t* row = a.w + size_t(j) * a.w_stride;
    for (int r = 0; r < a.rows; ++r) {
      const size_t xr = size_t(r) * a.x_stride;
      float acc = 0.0f;
      for (int b = 0; b < a.kb; ++b) {
        quant::decode_sub(T, row + size_t(b / subs) * info.block_bytes, b % subs, sb);
        const int8_t* xq = a.xq + (xr + b) * kQuantSub;
        int lo = 0, hi = 0;
        for (int l = 0; l < 16; ++l) lo += sb.q[l] * xq[l];
        for (int l = 16; l < 32; ++l) hi += sb.q[l] * xq[l];
        acc += float(lo * sb.sc[0] + hi * sb.sc[1]) * (sb.d * a.xd[xr + b]);
        acc += sb.m * a.xs[xr + b];
      }
      if (a.ep != nullptr) {
        if (a.ep->bias != nullptr) acc += a.ep->bias[j];
        if (a.ep->residual != nullptr) acc += a.ep->residual[size_t(r) * a.ep->ldr + j];
      }
      a.y[size_t(r) * a.ldy + j] = acc;
    }
  }
}

}  // namespace

const QuantKernels& quant_kernels() {
  static const QuantKernels table{
      "quant_dot__generic",
      4,
      &quantize_act,
      {&dot<QuantType::kQ8_0>, &dot<QuantType::kQ4_0>, &dot<QuantType::kQ4_1>,
       &dot<QuantType::kQ5_0>, &dot<QuantType::kQ5_1>, &dot<QuantType::kQ4_K>,
       &dot<QuantType::kQ5_K>, &dot<QuantType::kQ6_K>},
      {},  // no x8 kernels: rows stay in the file's layout
      &quant::dequantize_panel,
  };
  return table;
}

}  // namespace pyengine::kernels::generic
