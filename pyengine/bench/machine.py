"""The machine's limits, measured (not taken from a spec sheet), and its description."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass

from pyengine import _C, cpu_info


@dataclass
class MachineLimits:
    threads: int
    peak_gflops: float  # fp32 FMA throughput on `threads` threads, widest vectors of the level
    read_gbs: float  # streaming read bandwidth on `threads` threads, buffer far beyond the caches
    # bf16 products of the AMX tile unit on `threads` threads (None: the level has none)
    tile_peak_gflops: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def measure_limits(threads: int, *, stream_bytes: int = 1 << 30) -> MachineLimits:
    """Runs the probes with the pool set to `threads` (restored afterwards)."""
    previous = _C.get_num_threads()
    _C.set_num_threads(threads)
    try:
        peak = max(_C.probe_peak_gflops(0.2) for _ in range(3))
        bandwidth = _C.probe_read_bandwidth_gbs(stream_bytes, 5)
        tiles = max(_C.probe_bf16_tile_peak_gflops(0.2) for _ in range(3)) or None
    finally:
        _C.set_num_threads(previous)
    return MachineLimits(threads, peak, bandwidth, tiles)


L3_SIZE_FILE = "/sys/devices/system/cpu/cpu0/cache/index3/size"


def last_level_cache_bytes(path: str = L3_SIZE_FILE) -> int | None:
    """The L3 cache of cpu0 as Linux reports it ("32768K"), in bytes; None where there is no
    such file (no L3, or not Linux) or it cannot be read."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    return int(digits) * scale if digits.isdigit() else None


def describe_machine() -> dict:
    info = cpu_info()
    return {
        "cpu": info["brand"],
        "machine": platform.machine(),
        "cpus": info["available_cpus"],
        "isa_level": info["isa_level"],
        "features": sorted(k for k, v in info["features"].items() if v),
        "cache_bytes": info["cache_bytes"],
        "python": platform.python_version(),
    }
