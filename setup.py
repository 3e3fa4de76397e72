"""Builds pyengine._C: the portable sources with baseline x86-64 flags, and each ISA level's
kernels (csrc/kernels/<level>/) with that level's flags only. Never -march=native: the wheel
must run on any x86-64 and pick the best level at import."""

import os
import tempfile
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

# The flags of each ISA level's translation units. csrc/cpu/isa_level.cpp checks the same
# features at import before any of these kernels may run.
_AVX2 = ["-mavx", "-mavx2", "-mfma", "-mf16c"]
_AVX512 = _AVX2 + ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"]
ISA_FLAGS = {
    "generic": [],
    "avx2": _AVX2,
    "avx512": _AVX512,
    # avx512 plus the AMX tile unit and AVX512-BF16 (the fp32 -> bf16 conversion of A)
    "amx": _AVX512 + ["-mavx512bf16", "-mamx-tile", "-mamx-bf16"],
}


def isa_of(source):
    parts = os.path.normpath(source).split(os.sep)
    if len(parts) > 3 and parts[:2] == ["csrc", "kernels"] and parts[2] in ISA_FLAGS:
        return parts[2]
    return None


# A compiler without AMX intrinsics (GCC < 11, clang < 12) still builds everything else: the amx
# level is then left out (PYENGINE_HAVE_AMX=0) and AMX CPUs run the avx512 kernels.
# PYENGINE_BUILD_AMX=0 leaves it out on purpose.
AMX_PROBE = """
#include <immintrin.h>
void probe(const void* cfg, float* c) {
  _tile_loadconfig(cfg);
  _tile_zero(0);
  _tile_dpbf16ps(0, 1, 2);
  _tile_stored(0, c, 64);
  _mm512_cvtne2ps_pbh(_mm512_setzero_ps(), _mm512_setzero_ps());
}
"""


def compiler_has_amx(compiler) -> bool:
    if os.environ.get("PYENGINE_BUILD_AMX", "1") == "0":
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "amx_probe.cpp")
        with open(src, "w") as f:
            f.write(AMX_PROBE)
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=ISA_FLAGS["amx"])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Adds the ISA flags of csrc/kernels/<level>/ sources to their own compile commands."""

    def build_extensions(self):
        have_amx = compiler_has_amx(self.compiler)
        for ext in self.extensions:
            if not have_amx:
                ext.sources = [s for s in ext.sources if isa_of(s) != "amx"]
                print(
                    "pyengine: building without the amx level (the compiler has no AMX "
                    "intrinsics, or PYENGINE_BUILD_AMX=0); AMX CPUs will run the avx512 kernels"
                )
            ext.define_macros.append(("PYENGINE_HAVE_AMX", "1" if have_amx else "0"))
        compile_one = self.compiler._compile

        def compile_with_isa_flags(obj, src, ext, cc_args, extra_postargs, pp_opts):
            isa = isa_of(os.path.relpath(src))
            flags = ISA_FLAGS[isa] if isa else []
            compile_one(obj, src, ext, cc_args, list(extra_postargs) + flags, pp_opts)

        self.compiler._compile = compile_with_isa_flags
        super().build_extensions()


sources = sorted(glob("csrc/**/*.cpp", recursive=True))
ext = Pybind11Extension(
    "pyengine._C",
    sources,
    include_dirs=["csrc"],
    # any header change rebuilds every source (setuptools tracks no per-file includes)
    depends=sorted(glob("csrc/**/*.h", recursive=True)),
    cxx_std=20,
    extra_compile_args=[
        "-O3",
        "-fno-wrapv",
        "-fno-math-errno",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
    ],
)

ParallelCompile("PYENGINE_BUILD_JOBS", default=0).install()
setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
