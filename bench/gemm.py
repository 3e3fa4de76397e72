"""fp32 GEMM/GEMV: pyengine.ops.Linear vs numpy (its BLAS) and torch, same process, same
threads: square sizes 256..4096, real model shapes at M = 1, 4, 16, 64, 512, and a GEMV over a
1 GiB weight (far beyond the caches). Medians, the ratio to each peer (> 1: pyengine faster),
the fraction of the measured FMA peak (GB/s vs read bandwidth for M <= 4).

    python bench/gemm.py [--threads 1,2] [--repeat 7] [--json out.json]
"""

import argparse
import json

from pyengine.bench import gemm_suite, report
from pyengine.bench.machine import describe_machine, measure_limits
from pyengine.bench.peers import blas_description, version
from pyengine.bench.runner import Progress


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", help="write every sample here")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    machine = describe_machine()
    print(f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {machine['isa_level']}")
    print(f"# numpy {version('numpy')} ({blas_description()}), torch {version('torch')}")
    limits = {t: measure_limits(t) for t in threads}
    for t, lim in limits.items():
        print(
            f"# {t} thread(s): measured FMA peak {lim.peak_gflops:.1f} GFLOP/s, read bandwidth "
            f"{lim.read_gbs:.1f} GB/s"
        )
    results = gemm_suite.run(threads, limits, mode="full", repeat=args.repeat, progress=Progress())
    print(report.table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": [r.as_dict() for r in results]}, f, indent=1)


if __name__ == "__main__":
    main()
