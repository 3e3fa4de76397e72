"""fp32 GEMM/GEMV: pyengine.ops.Linear vs numpy (its BLAS) and torch, same process, same
threads. Reports medians, the ratio to each peer (>1: pyengine is faster) and the fraction of
the measured machine limit (FMA peak; read bandwidth for M <= 4).

    python bench/gemm.py [--threads 1,2] [--quick] [--repeat 7] [--json out.json]
"""

import argparse
import json
import sys

from pyengine.bench.gemm_suite import default_cases, run_case
from pyengine.bench.machine import describe_machine, measure_limits
from pyengine.bench.peers import blas_description, version
from pyengine.bench.report import format_gemm_rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", help="write every sample here")
    args = parser.parse_args()

    machine = describe_machine()
    print(f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {machine['isa_level']}")
    print(f"# numpy {version('numpy')} ({blas_description()}), torch {version('torch')}")
    report = {"machine": machine, "limits": [], "rows": []}
    for threads in (int(t) for t in args.threads.split(",")):
        limits = measure_limits(threads)
        report["limits"].append(limits.as_dict())
        print(
            f"\n## {threads} thread(s): measured peak {limits.peak_gflops:.1f} GFLOP/s, "
            f"read bandwidth {limits.read_gbs:.1f} GB/s"
        )
        rows = []
        for case in default_cases(args.quick):
            print(f"  running {case.name} ...", end="\r", file=sys.stderr, flush=True)
            rows.append(run_case(case, threads, limits, args.repeat))
        print(format_gemm_rows(rows))
        report["rows"] += rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
