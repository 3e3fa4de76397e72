"""The GEMM/GEMV workloads: pyengine.ops.Linear next to numpy (its BLAS) and torch, computing
the same y = x @ W^T into a preallocated output, at the same thread count. A few compute-bound
cases also run pyengine.ops.Bf16Linear (bf16 weights; AMX where the CPU has it) next to the same
float32 peers; memory-bound ones do not, since a GB/s figure means different bytes there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import pyengine
from pyengine.bench.dtypes import bf16_products_on_tiles
from pyengine.bench.machine import MachineLimits
from pyengine.bench.peers import installed, peer_threads
from pyengine.bench.results import Result
from pyengine.bench.timing import measure
from pyengine.ops import Bf16Linear, Linear

SQUARE_SIZES = (256, 512, 1024, 2048, 4096)
# (in_features, out_features): SmolLM2-135M, all-MiniLM-L6-v2 and a 1.1B Llama's projections.
MODEL_SHAPES = ((576, 1536), (1536, 576), (384, 1536), (2048, 5632), (5632, 2048))
MODEL_ROWS = (1, 4, 16, 64, 512)
# Decode streams weights from memory: a matrix as large as the bandwidth probe's buffer (1 GiB),
# far beyond every cache level.
STREAM_SHAPE = (16384, 16384)


@dataclass
class GemmCase:
    name: str
    m: int
    k: int
    n: int
    dtype: str = "float32"  # pyengine's weight storage; peers always compute in float32

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n

    @property
    def weight_bytes(self) -> int:
        return 4 * self.k * self.n

    @property
    def memory_bound(self) -> bool:
        """Few rows: the weights are read once per few FMAs, so bandwidth is the roof."""
        return self.m <= 4


def default_cases(mode: str = "full") -> list[GemmCase]:
    """ "full": bench/gemm.py's sweep; "standard": the runner's few model shapes and the
    streaming GEMV; "quick": a smoke run of two small cases."""
    if mode == "quick":
        cases = [GemmCase(f"576->1536 M={m}", m, 576, 1536) for m in (1, 64)]
        return cases + [GemmCase("576->1536 M=64 [bf16 weights]", 64, 576, 1536, "bfloat16")]
    name = f"gemv {STREAM_SHAPE[0]}x{STREAM_SHAPE[1]} (1 GiB)"
    stream = GemmCase(name, 1, STREAM_SHAPE[1], STREAM_SHAPE[0])
    if mode == "standard":
        shapes = [
            (576, 1536, 1),
            (576, 1536, 512),
            (2048, 5632, 1),
            (2048, 5632, 64),
            (1024, 1024, 1024),
        ]
        bf16 = [
            GemmCase(f"{k}->{n} M={m} [bf16 weights]", m, k, n, "bfloat16")
            for k, n, m in [(576, 1536, 512), (384, 1536, 4096), (1024, 1024, 1024)]
        ]
        return [GemmCase(f"{k}->{n} M={m}", m, k, n) for k, n, m in shapes] + bf16 + [stream]
    cases = [GemmCase(f"square {s}", s, s, s) for s in SQUARE_SIZES]
    cases += [GemmCase(f"{k}->{n} M={m}", m, k, n) for k, n in MODEL_SHAPES for m in MODEL_ROWS]
    return cases + [stream]


def _engines(case: GemmCase, rng: np.random.Generator):
    """name -> zero-argument callable computing x @ W^T into a preallocated output."""
    w = rng.standard_normal((case.n, case.k), dtype=np.float32)
    x = rng.standard_normal((case.m, case.k), dtype=np.float32)
    out = np.empty((case.m, case.n), np.float32)
    lin = (Bf16Linear if case.dtype == "bfloat16" else Linear)(w)
    engines = {"pyengine": lambda: lin(x, out=out)}
    wt = w.T  # numpy's BLAS reads the transposed view directly
    engines["numpy"] = lambda: np.matmul(x, wt, out=out)
    if installed("torch"):
        import torch

        tw, tx, tout = torch.from_numpy(w), torch.from_numpy(x), torch.from_numpy(out)
        twt = tw.t()
        engines["torch"] = lambda: torch.matmul(tx, twt, out=tout)
    return engines


def run_case(
    case: GemmCase, threads: int, limits: MachineLimits, repeat: int, peers=("numpy", "torch")
) -> Result:
    """Times pyengine and each requested peer on one case at `threads` threads."""
    rng = np.random.default_rng(0)
    engines = {k: v for k, v in _engines(case, rng).items() if k == "pyengine" or k in peers}
    samples = {}
    previous = pyengine.get_num_threads()
    pyengine.set_num_threads(threads)
    try:
        with peer_threads(threads):
            for name, fn in engines.items():
                samples[name] = measure(fn, repeat=repeat).samples
    finally:
        pyengine.set_num_threads(previous)
    if case.memory_bound:
        return Result(
            "kernels",
            case.name,
            threads,
            "GB/s",
            case.weight_bytes * 1e-9,
            samples,
            limits.read_gbs,
            "bandwidth",
        )
    roof, kind = limits.peak_gflops, "FMA peak"
    if case.dtype == "bfloat16" and bf16_products_on_tiles(case.m):
        roof, kind = limits.tile_peak_gflops, "AMX bf16 peak"
    return Result(
        "kernels",
        case.name,
        threads,
        "GFLOP/s",
        case.flops * 1e-9,
        samples,
        roof,
        kind if roof else None,
    )


def run(
    threads_list, limits, *, mode="standard", repeat=7, peers=("numpy", "torch"), progress=None
) -> list[Result]:
    results = []
    for t in threads_list:
        for case in default_cases(mode):
            if progress:
                progress(f"kernels: {case.name}, {t} thread(s)")
            results.append(run_case(case, t, limits[t], repeat, peers))
    return results
