"""One record per measured workload, shared by every suite, the report, JSON and --compare."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from pyengine.bench.timing import relative_spread


@dataclass
class Result:
    """Seconds-per-call samples of each engine on one workload at one thread count.

    work: units of work per call (FLOPs, tokens, sentences), so rate = work / seconds in
    `unit`; for latency workloads (unit "ms") the figure is the time itself, lower is better.
    limit: the machine's roof in the same unit (measured peak FLOP/s or bandwidth-bound
    tokens/s), or None where no single roof applies.
    """

    suite: str
    workload: str
    threads: int
    unit: str
    work: float
    samples: dict[str, list[float]]
    limit: float | None = None
    # "FMA peak" | "AMX bf16 peak" | "bandwidth" | "bandwidth (cache-resident: ...)"
    limit_kind: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def latency(self) -> bool:
        return self.unit == "ms"

    def median(self, engine: str) -> float:
        return statistics.median(self.samples[engine])

    def figure(self, engine: str) -> float:
        s = self.median(engine)
        return s * 1e3 if self.latency else self.work / s

    def spread(self, engine: str) -> float:
        """Interquartile range over median: the run's own noise for this engine."""
        return relative_spread(self.samples[engine])

    def speedup(self, peer: str) -> float:
        """How many times faster pyengine is than `peer` (> 1: pyengine wins)."""
        return self.median(peer) / self.median("pyengine")

    def best_peer(self) -> str | None:
        """The fastest peer on this row (lowest median), None without peers."""
        return min(self.peers, key=self.median, default=None)

    def of_limit(self) -> float | None:
        if self.limit is None or self.latency:
            return None
        return self.figure("pyengine") / self.limit

    @property
    def peers(self) -> list[str]:
        return [e for e in self.samples if e != "pyengine"]

    @property
    def key(self) -> tuple:
        return (self.suite, self.workload, self.threads)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["figures"] = {e: self.figure(e) for e in self.samples}
        d["speedup"] = {p: self.speedup(p) for p in self.peers}
        d["best_peer"] = self.best_peer()
        d["of_limit"] = self.of_limit()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        keys = (
            "suite",
            "workload",
            "threads",
            "unit",
            "work",
            "samples",
            "limit",
            "limit_kind",
            "notes",
        )
        return cls(**{k: d[k] for k in keys if k in d})
