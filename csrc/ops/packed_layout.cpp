#include "ops/packed_layout.h"

#include "kernels/bf16_gemm_kernels.h"
#include "kernels/common/quant_blocks.h"
#include "ops/f32_gemm.h"
#include "ops/quant_linear.h"

namespace pyengine::ops {

std::string packed_layout(cpu::IsaLevel level) {
  std::string s = "v" + std::to_string(kPackedLayoutVersion);
  s += " f32.nr=" + std::to_string(f32_gemm_kernels(level).nr);
  s += " bf16.panel=" + std::to_string(kernels::kBf16PanelWidth);
  const QuantKernels& q = quant_kernels(level);
  std::string x8;
  for (const auto& info : kernels::kQuantTypes) {
    const auto t = *parse_quant_type(info.name);
    if (q.dot_x8[int(t)] != nullptr && kernels::quant::has_x8_layout(t)) {
      x8 += std::string(x8.empty() ? "" : ",") + info.name;
    }
  }
  return s + " x8=" + (x8.empty() ? "none" : x8);
}

}  // namespace pyengine::ops
