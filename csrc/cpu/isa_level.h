// ISA levels: which family of kernel translation units runs. Chosen once, at first use, from
// the detected features, or forced with PYENGINE_ISA=generic|avx2|avx512|amx. The amx level is
// avx512 plus the AMX tile unit (and AVX512-BF16) for bf16 matrix products; its fp32 kernels
// are the avx512 ones.
#pragma once
#include <string>
#include <vector>

#include "cpu/features.h"

// 1 when the amx level's kernels are built (setup.py leaves them out where the compiler has no
// AMX intrinsics, or when PYENGINE_BUILD_AMX=0).
#ifndef PYENGINE_HAVE_AMX
#define PYENGINE_HAVE_AMX 0
#endif

namespace pyengine::cpu {

enum class IsaLevel { kGeneric = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };

const char* isa_level_name(IsaLevel level);
// Throws std::invalid_argument naming the accepted names.
IsaLevel parse_isa_level(const std::string& name);

// The CPU features a level's kernels need, comma separated ("avx2, fma, f16c"); "" for generic.
std::string isa_level_requirements(IsaLevel level);
// Whether `features` has everything the level's kernels use.
bool isa_level_supported(IsaLevel level, const CpuFeatures& features);
std::vector<IsaLevel> supported_isa_levels(const CpuFeatures& features);
// The best supported level, or `requested` (empty = none) when the CPU has it.
// Throws std::invalid_argument for an unknown name and std::runtime_error for a level the CPU
// lacks, naming the missing features.
IsaLevel choose_isa_level(const CpuFeatures& features, const std::string& requested);

// The process-wide level: choose_isa_level(cpu_features(), $PYENGINE_ISA), computed once.
IsaLevel active_isa_level();

}  // namespace pyengine::cpu
