#include "cpu/features.h"

#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <cstdint>
#include <cstring>

namespace pyengine::cpu {
namespace {

struct Regs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Regs cpuid(unsigned leaf, unsigned subleaf = 0) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

// XGETBV(0): which register states the OS saves on context switch. Inline asm, because the
// _xgetbv intrinsic needs -mxsave and this file is compiled for the baseline.
uint64_t xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// Linux enables AMX tile data per process, on request (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); the first tile instruction without it kills the process with SIGILL.
bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

bool bit(unsigned word, int b) { return (word >> b) & 1u; }

std::string brand_string() {
  if (cpuid(0x80000000u).eax < 0x80000004u) return "unknown x86-64";
  char buf[49] = {};
  for (unsigned i = 0; i < 3; ++i) {
    const Regs r = cpuid(0x80000002u + i);
    std::memcpy(buf + 16 * i + 0, &r.eax, 4);
    std::memcpy(buf + 16 * i + 4, &r.ebx, 4);
    std::memcpy(buf + 16 * i + 8, &r.ecx, 4);
    std::memcpy(buf + 16 * i + 12, &r.edx, 4);
  }
  std::string s(buf);
  const auto first = s.find_first_not_of(' ');
  const auto last = s.find_last_not_of(' ');
  return first == std::string::npos ? "unknown x86-64" : s.substr(first, last - first + 1);
}

// CPUID leaf 4 (deterministic cache parameters, Intel; AMD reports the same through 0x8000001D).
void read_caches(CpuFeatures& f, unsigned max_leaf) {
  auto scan = [&](unsigned leaf) {
    for (unsigned sub = 0; sub < 16; ++sub) {
      const Regs r = cpuid(leaf, sub);
      const unsigned type = r.eax & 0x1f;  // 0: no more caches, 1: data, 2: instruction, 3: unified
      if (type == 0) break;
      if (type == 2) continue;
      const unsigned level = (r.eax >> 5) & 0x7;
      const long ways = ((r.ebx >> 22) & 0x3ff) + 1;
      const long partitions = ((r.ebx >> 12) & 0x3ff) + 1;
      const long line = (r.ebx & 0xfff) + 1;
      const long sets = long(r.ecx) + 1;
      const long bytes = ways * partitions * line * sets;
      if (level == 1) f.l1d_bytes = bytes;
      if (level == 2) f.l2_bytes = bytes;
      if (level == 3) f.l3_bytes = bytes;
    }
  };
  if (max_leaf >= 4) scan(4);
  if (f.l1d_bytes == 0 && cpuid(0x80000000u).eax >= 0x8000001Du) scan(0x8000001Du);
}

CpuFeatures detect() {
  CpuFeatures f;
  f.brand = brand_string();
  const unsigned max_leaf = cpuid(0).eax;
  const Regs l1 = cpuid(1);
  f.sse2 = bit(l1.edx, 26);
  const bool osxsave = bit(l1.ecx, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;        // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA

  f.avx = bit(l1.ecx, 28) && os_ymm;
  f.fma = bit(l1.ecx, 12) && os_ymm;
  f.f16c = bit(l1.ecx, 29) && os_ymm;
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = bit(l7.ebx, 5) && os_ymm;
    f.avx512f = bit(l7.ebx, 16) && os_zmm;
    f.avx512dq = bit(l7.ebx, 17) && os_zmm;
    f.avx512bw = bit(l7.ebx, 30) && os_zmm;
    f.avx512vl = bit(l7.ebx, 31) && os_zmm;
    f.avx512_vnni = bit(l7.ecx, 11) && os_zmm;
    f.avx512_fp16 = bit(l7.edx, 23) && os_zmm;
    f.amx_bf16 = bit(l7.edx, 22) && os_amx;
    f.amx_tile = bit(l7.edx, 24) && os_amx;
    f.amx_int8 = bit(l7.edx, 25) && os_amx;
    if (l7.eax >= 1) {
      const Regs l71 = cpuid(7, 1);
      f.avx_vnni = bit(l71.eax, 4) && os_ymm;
      f.avx512_bf16 = bit(l71.eax, 5) && os_zmm;
    }
  }
  if (f.amx_tile && !request_amx_permission()) f.amx_tile = f.amx_bf16 = f.amx_int8 = false;
  read_caches(f, max_leaf);
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace pyengine::cpu
