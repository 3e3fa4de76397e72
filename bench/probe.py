"""Measures this machine's limits: peak fp32 FMA GFLOP/s and streaming-read GB/s, per thread
count. Every benchmark reports its rates as a fraction of these.

    python bench/probe.py [--threads 1,2]
"""

import argparse
import json

from pyengine.bench.machine import describe_machine, measure_limits


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    args = parser.parse_args()
    print(json.dumps(describe_machine(), indent=1))
    for t in (int(x) for x in args.threads.split(",")):
        lim = measure_limits(t)
        print(f"threads={t}: peak {lim.peak_gflops:7.1f} GFLOP/s   read {lim.read_gbs:6.1f} GB/s")


if __name__ == "__main__":
    main()
