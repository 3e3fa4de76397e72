"""What the CPU offers and which kernels run on it."""

from pyengine import _C


def cpu_info() -> dict:
    """The CPU and how pyengine uses it.

    Keys: ``brand``; ``features`` (flag -> bool: avx2, fma, f16c, avx512f/bw/vl/dq, avx512_vnni,
    avx512_bf16, avx_vnni, amx_tile/amx_bf16/amx_int8, ...; each true only when the OS also
    enables the registers it needs, and for AMX, when Linux granted this process the tile
    state); ``isa_level`` (the kernels in use: generic, avx2, avx512 or amx = avx512 plus the AMX
    tile unit for bfloat16 products; the best supported unless PYENGINE_ISA forces one);
    ``supported_isa_levels``;
    ``num_threads`` (the pool's threads); ``available_cpus`` (CPUs in this process's affinity
    mask); ``cache_bytes`` (l1d, l2, l3; 0 where CPUID does not say).
    """
    return {
        "brand": _C.cpu_brand(),
        "features": _C.cpu_features(),
        "isa_level": _C.isa_level(),
        "supported_isa_levels": _C.supported_isa_levels(),
        "num_threads": _C.get_num_threads(),
        "available_cpus": _C.available_cpus(),
        "cache_bytes": _C.cache_sizes(),
    }
