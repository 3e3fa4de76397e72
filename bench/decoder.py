"""Decoder LLM speed: SmolLM2-135M-Instruct prefill (512-token prompt) and decode (128 new
tokens), batch 1, at 1 and 2 threads, pyengine with float32 and with bfloat16 weights next to
transformers+torch fp32 on the same GGUF and llama.cpp (llama-cpp-python, when installed),
measured once in the same run; then a random-weight 1.1B Llama's decode tokens/s per weight
dtype against its memory-bandwidth roofline (weight bytes per token / measured bandwidth).

    python bench/decoder.py [--threads 1,2] [--dtypes float32,bfloat16] [--repeat 5]
                            [--skip-1b] [--json out.json]
"""

import argparse
import json

from pyengine.bench import decoder_suite, report
from pyengine.bench.dtypes import parse_dtypes
from pyengine.bench.machine import describe_machine, measure_limits
from pyengine.bench.peers import PEERS, peer_installed, peer_versions
from pyengine.bench.runner import DEFAULT_DTYPES, Progress


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--dtypes", default=DEFAULT_DTYPES, help="pyengine's weight dtypes")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-1b", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        dtypes = parse_dtypes(args.dtypes)
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
    peers = [p for p in ("torch", "llama.cpp") if peer_installed(p)]
    for p in ("torch", "llama.cpp"):
        if p not in peers:
            print(f"# peer {p}: not installed ({PEERS[p][1]})")
    results = decoder_suite.run(
        "smollm2-135m-instruct",
        threads,
        limits,
        dtypes=dtypes,
        peers=peers,
        repeat=args.repeat,
        progress=progress,
    )
    if not args.skip_1b:
        results += decoder_suite.run_random_llama(threads, limits, dtypes=dtypes, progress=progress)
    print(report.table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": [r.as_dict() for r in results]}, f, indent=1)


if __name__ == "__main__":
    main()
