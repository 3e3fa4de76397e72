#include "cpu/isa_level.h"

#include <cstdlib>
#include <stdexcept>

namespace pyengine::cpu {
namespace {

constexpr IsaLevel kAllLevels[] = {IsaLevel::kGeneric, IsaLevel::kAvx2, IsaLevel::kAvx512,
                                   IsaLevel::kAmx};

// The features each level's translation units are compiled for (see setup.py's ISA_FLAGS).
std::string missing_features(IsaLevel level, const CpuFeatures& f) {
  std::string missing;
  auto need = [&](bool have, const char* name) {
    if (!have) missing += missing.empty() ? name : std::string(", ") + name;
  };
  if (level >= IsaLevel::kAvx2) {
    need(f.avx2, "avx2");
    need(f.fma, "fma");
    need(f.f16c, "f16c");
  }
  if (level >= IsaLevel::kAvx512) {
    need(f.avx512f, "avx512f");
    need(f.avx512bw, "avx512bw");
    need(f.avx512vl, "avx512vl");
    need(f.avx512dq, "avx512dq");
  }
  if (level >= IsaLevel::kAmx) {
    need(PYENGINE_HAVE_AMX, "amx kernels (left out of this build)");
    need(f.avx512_bf16, "avx512_bf16");
    need(f.amx_tile, "amx_tile");
    need(f.amx_bf16, "amx_bf16");
  }
  return missing;
}

}  // namespace

const char* isa_level_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::kGeneric:
      return "generic";
    case IsaLevel::kAvx2:
      return "avx2";
    case IsaLevel::kAvx512:
      return "avx512";
    case IsaLevel::kAmx:
      return "amx";
  }
  return "?";
}

IsaLevel parse_isa_level(const std::string& name) {
  for (IsaLevel level : kAllLevels) {
    if (name == isa_level_name(level)) return level;
  }
  throw std::invalid_argument("unknown ISA level '" + name +
                              "'; expected one of: generic, avx2, avx512, amx");
}

std::string isa_level_requirements(IsaLevel level) {
  return missing_features(level, CpuFeatures{});
}

bool isa_level_supported(IsaLevel level, const CpuFeatures& features) {
  return missing_features(level, features).empty();
}

std::vector<IsaLevel> supported_isa_levels(const CpuFeatures& features) {
  std::vector<IsaLevel> levels;
  for (IsaLevel level : kAllLevels) {
    if (isa_level_supported(level, features)) levels.push_back(level);
  }
  return levels;
}

IsaLevel choose_isa_level(const CpuFeatures& features, const std::string& requested) {
  if (requested.empty()) return supported_isa_levels(features).back();
  const IsaLevel level = parse_isa_level(requested);
  const std::string missing = missing_features(level, features);
  if (!missing.empty()) {
    throw std::runtime_error(std::string("ISA level '") + requested +
                             "' was requested but this CPU/OS lacks: " + missing);
  }
  return level;
}

IsaLevel active_isa_level() {
  static const IsaLevel level = [] {
    const char* env = std::getenv("PYENGINE_ISA");
    return choose_isa_level(cpu_features(), env == nullptr ? "" : env);
  }();
  return level;
}

}  // namespace pyengine::cpu
