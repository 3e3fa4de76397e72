// Portable driver of softmax (kernels/f32_softmax_kernels.h): the ISA level's table, and rows
// split across the thread pool when the job is large enough.
#pragma once
#include <cstdint>

#include "cpu/isa_level.h"
#include "kernels/f32_softmax_kernels.h"

namespace pyengine::ops {

const kernels::F32SoftmaxKernels& f32_softmax_kernels(cpu::IsaLevel level);

// Softmax along each row of x [rows, n] into y [rows, n], both C-contiguous. y may equal x.
void f32_softmax(cpu::IsaLevel level, int64_t rows, int64_t n, const float* x, float* y);

}  // namespace pyengine::ops
