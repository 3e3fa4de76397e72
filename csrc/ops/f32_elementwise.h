// Portable drivers of the elementwise ops (kernels/f32_elementwise_kernels.h): the ISA level's
// table, and the array split across the thread pool when the job is large enough.
#pragma once
#include <cstdint>

#include "cpu/isa_level.h"
#include "kernels/f32_elementwise_kernels.h"

namespace pyengine::ops {

const kernels::F32ElementwiseKernels& f32_elementwise_kernels(cpu::IsaLevel level);

enum class GeluApproximation { kTanh, kNone };

// y = a + b over n floats; y may equal a or b.
void f32_add(cpu::IsaLevel level, int64_t n, const float* a, const float* b, float* y);
// y = gelu(x) over n floats (kTanh: the tanh approximation, kNone: exact, with erf); y may equal x.
void f32_gelu(cpu::IsaLevel level, GeluApproximation approximate, int64_t n, const float* x,
              float* y);
// gate_up [rows, 2 * inter] -> y [rows, inter] = silu(gate) * up; y may not overlap gate_up.
void f32_swiglu(cpu::IsaLevel level, int64_t rows, int64_t inter, const float* gate_up, float* y);
// gate_up [rows, 2 * inter] -> y [rows, inter] = gelu_tanh(gate) * up; y may not overlap gate_up.
void f32_geglu(cpu::IsaLevel level, int64_t rows, int64_t inter, const float* gate_up, float* y);
// y = s * x over n floats; y may equal x.
void f32_scale(cpu::IsaLevel level, int64_t n, float s, const float* x, float* y);
// y = cap * tanh(x / cap) over n floats, cap > 0; y may equal x.
void f32_softcap(cpu::IsaLevel level, int64_t n, float cap, const float* x, float* y);

}  // namespace pyengine::ops
