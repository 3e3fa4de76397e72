// What the packed weights of one ISA level look like, as a string a pack file records: a file
// is run only where this string is the same, so a layout change refuses old files instead of
// misreading them.
#pragma once
#include <string>

#include "cpu/isa_level.h"

namespace pyengine::ops {

// Bump whenever a packing function's output changes for the same parameters (f32_pack_b,
// bf16_pack_b, the quantized x8 interleave, quantize_rows' encoders).
inline constexpr int kPackedLayoutVersion = 1;

// "v1 f32.nr=16 bf16.panel=32 x8=Q8_0,Q4_0,..." for `level`.
std::string packed_layout(cpu::IsaLevel level);

}  // namespace pyengine::ops
