// What the CPU and the OS together allow: CPUID feature bits gated by XGETBV (the OS must save
// the wide registers, or the instructions fault), plus the brand string and cache sizes.
#pragma once
#include <string>

namespace pyengine::cpu {

struct CpuFeatures {
  std::string brand;
  bool sse2 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false, avx512_fp16 = false, avx_vnni = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  // Cache sizes in bytes (0 when CPUID does not report them). L1d and L2 are per core.
  long l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;
};

// Detected once and cached.
const CpuFeatures& cpu_features();

}  // namespace pyengine::cpu
