// The elementwise kernels every ISA level implements (add and the MLP activations), and the
// per-level tables. Portable header: no intrinsics here.
#pragma once
#include <cstddef>

namespace pyengine::kernels {

// Each element of y depends on the same-index element(s) of the input(s) only, and is computed
// the same way wherever it falls in a vector, so any split of [0, n) gives the same bits.
//   add:       y = a + b over n floats. y may equal a or b; no other overlap.
//   gelu_tanh: y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) over n floats (HF gelu_new,
//              gelu_pytorch_tanh). y may equal x; no other overlap.
//   gelu_erf:  y = 0.5 x (1 + erf(x / sqrt(2))) over n floats (HF "gelu"). y may equal x.
//   swiglu:    gate_up [rows, 2 * inter] -> y [rows, inter]: y = silu(gate) * up with
//              gate = gate_up[r, 0:inter], up = gate_up[r, inter:2 * inter],
//              silu(g) = g / (1 + exp(-g)). y may not overlap gate_up.
//   geglu:     as swiglu with gelu_tanh(gate) * up (Gemma's MLP).
//   scale:     y = s * x over n floats (Gemma's embedding scale). y may equal x.
//   softcap:   y = cap * tanh(x / cap) over n floats, cap > 0 (Gemma 2's final logits). y may
//              equal x.
// Every kernel writes exactly y[0 : n] (swiglu, geglu: y[0 : rows * inter]).
struct F32ElementwiseKernels {
  const char* name;  // e.g. "f32_elementwise__avx512"
  void (*add)(size_t n, const float* a, const float* b, float* y);
  void (*gelu_tanh)(size_t n, const float* x, float* y);
  void (*gelu_erf)(size_t n, const float* x, float* y);
  void (*swiglu)(size_t rows, size_t inter, const float* gate_up, float* y);
  void (*geglu)(size_t rows, size_t inter, const float* gate_up, float* y);
  void (*scale)(size_t n, float s, const float* x, float* y);
  void (*softcap)(size_t n, float cap, const float* x, float* y);
};

namespace generic {
const F32ElementwiseKernels& f32_elementwise_kernels();
}  // namespace generic
namespace avx2 {
const F32ElementwiseKernels& f32_elementwise_kernels();
}  // namespace avx2
namespace avx512 {
const F32ElementwiseKernels& f32_elementwise_kernels();
}  // namespace avx512

}  // namespace pyengine::kernels
