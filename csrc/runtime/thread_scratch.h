// Scratch memory owned by the calling thread, one buffer per use (kSlot), grown on first use
// and reused after: kernels get working space without allocating per call.
#pragma once
#include <cstddef>

#include "runtime/aligned_buffer.h"

namespace pyengine::runtime {

// At least `floats` floats, 64-byte aligned; valid until the same thread asks for kSlot again.
template <int kSlot>
float* thread_scratch(size_t floats) {
  thread_local AlignedBuffer scratch;
  if (scratch.size() < floats) scratch = AlignedBuffer(floats);
  return scratch.data();
}

// Scratch slots in use, one per distinct purpose.
enum ScratchSlot : int {
  kScratchF32BlockA = 0,    // fp32 GEMM: one packed block of A
  kScratchF32SharedA = 1,   // fp32 GEMM: all of A, packed once per call
  kScratchBf16A = 2,        // bf16 GEMM: all of A, rounded to bf16 once per call
  kScratchBf16Widened = 3,  // bf16 weights without tiles: one panel slice widened to fp32
  // attention: the partial states of one call (the calling thread's), written by its tasks
  kScratchAttentionStates = 4,
  kScratchAttentionTile = 5,     // attention, tiled kernel: one task's packed rows and scores
  kScratchQuantAct = 6,          // quantized weights, few rows: x quantized per 32 values
  kScratchQuantWidened = 7,      // quantized weights, many rows: one panel slice dequantized
  kScratchQuantDequantized = 8,  // quantized weights, many rows: the whole weight dequantized
};

}  // namespace pyengine::runtime
