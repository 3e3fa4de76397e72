// One ISA level's kernel table out of a family's per-level tables: every family's dispatch in
// one place. The amx level adds the AMX tile unit, which only the bf16 products use: a family
// passes amx = nullptr to run its avx512 table there.
#pragma once
#include <type_traits>

#include "cpu/isa_level.h"

namespace pyengine::cpu {

template <class Table>
const Table& by_level(IsaLevel level, const Table& (*generic)(), const Table& (*avx2)(),
                      const Table& (*avx512)(), std::type_identity_t<const Table& (*)()> amx) {
  switch (level) {
    case IsaLevel::kAmx:
      if (amx != nullptr) return amx();
      [[fallthrough]];
    case IsaLevel::kAvx512:
      return avx512();
    case IsaLevel::kAvx2:
      return avx2();
    case IsaLevel::kGeneric:
      break;
  }
  return generic();
}

}  // namespace pyengine::cpu
