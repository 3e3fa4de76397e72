"""The one timing method every benchmark uses: warm up, then repeat, report the median."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


def relative_spread(samples: list[float]) -> float:
    """Interquartile range relative to the median (the full range below 4 samples): the noise
    of a run, used to tell a real change from jitter."""
    mid = statistics.median(samples)
    if len(samples) < 4:
        return (max(samples) - min(samples)) / mid
    q = statistics.quantiles(samples, n=4)
    return (q[2] - q[0]) / mid


@dataclass
class Timing:
    """Seconds per call: every sample, and the summary figures the reports quote."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        return relative_spread(self.samples)


def measure(fn, *, repeat: int = 7, min_seconds: float = 0.05, warmup: int = 1) -> Timing:
    """Times fn() `repeat` times after `warmup` calls. A sample batches enough calls to last at
    least min_seconds, so fast kernels are not lost in timer resolution; it reports seconds per
    call."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, int(min_seconds / once))
    timing = Timing()
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        timing.samples.append((time.perf_counter() - start) / calls)
    return timing
