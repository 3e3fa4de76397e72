"""Decoder LLM speed: SmolLM2-135M-Instruct prefill (512-token prompt) and decode (128 new
tokens), batch 1, at 1 and 2 threads, pyengine with the GGUF's own blocks (auto), bfloat16 and
float32 weights next to transformers+torch (fp32, and bf16 where the CPU has bf16 hardware) on
the same GGUF and llama.cpp (llama-cpp-python, when installed), measured once in the same run;
then a random-weight 1.1B Llama's decode tokens/s with bf16, int8 and q4 weights against its
memory-bandwidth roofline (weight bytes per token / measured bandwidth). --dtypes replaces both
lists (auto, float32, bfloat16, int8, q4).

    python bench/decoder.py [--threads 1,2] [--dtypes auto,int8,q4] [--repeat 5]
                            [--skip-1b] [--json out.json]
"""

import argparse
import json

from pyengine.bench import decoder_suite, report
from pyengine.bench.dtypes import parse_dtypes
from pyengine.bench.machine import describe_machine, measure_limits
from pyengine.bench.peers import (
    PEERS,
    default_peers,
    peer_installed,
    peer_skipped_by_default,
    peer_versions,
)
from pyengine.bench.runner import Progress


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--dtypes", help="pyengine's weight dtypes (default: see above)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-1b", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        dtypes = parse_dtypes(args.dtypes) if args.dtypes else None
    except ValueError as e:
        parser.error(str(e))  # exits 2, like pyengine-bench
    threads = [int(t) for t in args.threads.split(",")]
    machine = describe_machine()
    print(f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {machine['isa_level']}")
    print("# " + ", ".join(f"{k} {v}" for k, v in peer_versions().items()))
    progress = Progress()
    limits = {t: measure_limits(t) for t in threads}
    for t, lim in limits.items():
        print(
            f"# {t} thread(s): FMA peak {lim.peak_gflops:.0f} GFLOP/s, read bandwidth "
            f"{lim.read_gbs:.1f} GB/s"
        )
    peers = default_peers("decoder")
    for p in ("torch", "torch-bf16", "llama.cpp"):
        if not peer_installed(p):
            print(f"# peer {p}: not installed ({PEERS[p][1]})")
        elif p not in peers:
            print(f"# peer {p}: not run ({peer_skipped_by_default(p)})")
    results = decoder_suite.run(
        "smollm2-135m-instruct",
        threads,
        limits,
        dtypes=dtypes or decoder_suite.DEFAULT_DTYPES,
        peers=peers,
        repeat=args.repeat,
        progress=progress,
    )
    if not args.skip_1b:
        results += decoder_suite.run_random_llama(
            threads,
            limits,
            dtypes=dtypes or decoder_suite.RANDOM_LLAMA_DTYPES,
            progress=progress,
        )
    print(report.table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": [r.as_dict() for r in results]}, f, indent=1)


if __name__ == "__main__":
    main()
