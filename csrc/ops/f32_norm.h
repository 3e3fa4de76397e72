// Portable drivers of the row normalizations (kernels/f32_norm_kernels.h): the ISA level's
// table, and rows split across the thread pool when the job is large enough.
#pragma once
#include <cstdint>

#include "cpu/isa_level.h"
#include "kernels/f32_norm_kernels.h"

namespace pyengine::ops {

const kernels::F32NormKernels& f32_norm_kernels(cpu::IsaLevel level);

// x, y [rows, n] C-contiguous; weight (and bias, which may be nullptr) [n]. y may equal x.
void f32_rms_norm(cpu::IsaLevel level, int64_t rows, int64_t n, const float* x, const float* weight,
                  float eps, float* y);
void f32_layer_norm(cpu::IsaLevel level, int64_t rows, int64_t n, const float* x,
                    const float* weight, const float* bias, float eps, float* y);

}  // namespace pyengine::ops
