"""pyengine-bench: how fast pyengine is on this machine, how close to the machine's limits,
and how it compares with the engines one would otherwise use, all measured in one run.

    pyengine-bench                                  the default suites on the default models
    pyengine-bench --quick                          a smoke run (under a minute)
    pyengine-bench --suite decoder --threads 1,2 --json run.json --plot run.png --markdown
    pyengine-bench --dtypes auto,float32,bfloat16,int8,q4   every weight dtype
    pyengine-bench --peers torch,torch-bf16         torch in fp32 and in bf16 only
    pyengine-bench --suite serve --threads 4        `pyengine serve` under 1-64 streaming clients
    pyengine-bench --compare old.json new.json      change per workload, regressions flagged
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

SUITES = ("kernels", "encoder", "decoder", "serve")
# serve starts servers and runs for minutes: only when asked for
DEFAULT_SUITES = ("kernels", "encoder", "decoder")
# the suites that load pyengine models, by module; each has its DEFAULT_DTYPES
DTYPE_SUITES = {"encoder": "encoder_suite", "decoder": "decoder_suite", "serve": "serve_suite"}
DEFAULT_MODELS = {
    "encoder": "all-minilm-l6-v2",
    "decoder": "smollm2-135m-instruct",
    "serve": "smollm2-135m-instruct",
}


class Progress:
    """One line per step on stderr, with the time since start: a long run never looks hung."""

    def __init__(self, enabled: bool = True):
        self.start = time.perf_counter()
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(
                f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True
            )


def _parse_args(argv):
    p = argparse.ArgumentParser(
        prog="pyengine-bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--suite",
        default=",".join(DEFAULT_SUITES),
        help=f"comma-separated: {','.join(SUITES)} (default: {','.join(DEFAULT_SUITES)})",
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="NAME|PATH",
        help="models for the encoder/decoder/serve suites (short names, folders, .gguf)",
    )
    p.add_argument("--threads", help="comma-separated thread counts (default: all CPUs)")
    p.add_argument(
        "--peers",
        help="comma-separated: numpy,torch,torch-bf16,onnxruntime,onnxruntime-int8,llama.cpp,"
        "llama.cpp-server "
        "(default: every installed one)",
    )
    p.add_argument(
        "--dtypes",
        help="comma-separated weight dtypes of pyengine's models in the encoder, decoder and "
        "serve suites (auto, float32, bfloat16, int8, q4), one row each next to the same peer "
        "measurement (default per suite: encoder float32,bfloat16,int8; decoder "
        "auto,bfloat16,float32; serve float32,bfloat16)",
    )
    p.add_argument("--quick", action="store_true", help="small workloads, a smoke run")
    p.add_argument("--repeat", type=int, default=None, help="timed samples per workload")
    p.add_argument("--json", help="write every raw sample here")
    p.add_argument("--plot", help="write a PNG bar chart of the speedups here")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two --json runs")
    return p.parse_args(argv)


def _load_results(path):
    from pyengine.bench.results import Result

    with open(path) as f:
        return [Result.from_dict(d) for d in json.load(f)["results"]]


def _models_by_suite(models, suites):
    """Assigns --models to the encoder suite, or the decoder and serve suites, by what their
    config says."""
    from pyengine.loaders import load_weights, resolve

    chosen = {s: [DEFAULT_MODELS[s]] for s in DEFAULT_MODELS if s in suites}
    if models:
        chosen = {s: [] for s in chosen}
        for m in models:
            config = load_weights(resolve(m), with_tokenizer=False, check=False).config
            for suite in ("encoder",) if config.is_encoder else ("decoder", "serve"):
                if suite in chosen:
                    chosen[suite].append(m)
    return chosen


def suite_dtypes(suite: str, dtypes: list[str] | None) -> list[str]:
    """The weight dtypes `suite` runs: --dtypes when given, else the suite's defaults."""
    if dtypes is not None:
        return dtypes
    return list(importlib.import_module(f"pyengine.bench.{DTYPE_SUITES[suite]}").DEFAULT_DTYPES)


def main(argv=None) -> int:
    args = _parse_args(argv)
    from pyengine.bench import report

    if args.compare:
        text, regressions = report.compare(
            _load_results(args.compare[0]), _load_results(args.compare[1])
        )
        print(text)
        print(f"{regressions} regression(s) beyond the measured noise")
        return 1 if regressions else 0

    import pyengine
    from pyengine.bench import decoder_suite, encoder_suite, gemm_suite
    from pyengine.bench.dtypes import parse_dtypes
    from pyengine.bench.machine import describe_machine, measure_limits
    from pyengine.bench.peers import (
        PEERS,
        peer_installed,
        peer_skipped_by_default,
        peer_versions,
    )

    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        print(f"pyengine-bench: unknown suite(s) {unknown}; choose from {SUITES}", file=sys.stderr)
        return 2
    requested = args.peers.split(",") if args.peers else list(PEERS)
    bad = [p for p in requested if p not in PEERS]
    if bad:
        print(f"pyengine-bench: unknown peer(s) {bad}; choose from {list(PEERS)}", file=sys.stderr)
        return 2
    try:
        dtypes = parse_dtypes(args.dtypes) if args.dtypes else None
    except ValueError as e:
        print(f"pyengine-bench: {e}", file=sys.stderr)
        return 2
    peers = [p for p in requested if peer_installed(p)]
    missing = [p for p in requested if p not in peers]
    skipped = {} if args.peers else {p: peer_skipped_by_default(p) for p in peers}
    skipped = {p: why for p, why in skipped.items() if why}
    peers = [p for p in peers if p not in skipped]
    threads = (
        [int(t) for t in args.threads.split(",")] if args.threads else [pyengine.get_num_threads()]
    )
    repeat = args.repeat or (3 if args.quick else 7)
    progress = Progress()

    machine = describe_machine()
    versions = {"pyengine": pyengine.__version__, **peer_versions()}
    progress("measuring the machine's limits")
    limits = {
        t: measure_limits(t, stream_bytes=(1 << 28) if args.quick else (1 << 30)) for t in threads
    }
    print(
        f"# pyengine-bench on {machine['cpu']}: {machine['cpus']} CPUs, ISA level "
        f"{machine['isa_level']} ({', '.join(f for f in machine['features'] if 'avx' in f)})"
    )
    for t, lim in limits.items():
        tiles = lim.tile_peak_gflops
        print(
            f"# {t} thread(s): measured FMA peak {lim.peak_gflops:.0f} GFLOP/s, read bandwidth "
            f"{lim.read_gbs:.1f} GB/s" + (f", AMX bf16 peak {tiles:.0f} GFLOP/s" if tiles else "")
        )
    print("# versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for p in missing:
        print(f"# peer {p}: not installed ({PEERS[p][1]})")
    for p, why in skipped.items():
        print(f"# peer {p}: not run by default: {why} (name it in --peers to run it)")
    weights = {s: suite_dtypes(s, dtypes) for s in suites if s in DTYPE_SUITES}
    if weights:
        print(
            "# pyengine weights: "
            + "; ".join(f"{s} {', '.join(d)}" for s, d in weights.items())
            + " (each next to the same peer samples)"
        )

    models = _models_by_suite(args.models, suites)
    results = []
    for suite in suites:
        suite_peers = [p for p in peers if suite in PEERS[p][2]]
        if suite == "kernels":
            results += gemm_suite.run(
                threads,
                limits,
                mode="quick" if args.quick else "standard",
                repeat=repeat,
                peers=suite_peers,
                progress=progress,
            )
        elif suite == "encoder":
            from pyengine.loaders import resolve

            for m in models["encoder"]:
                results += encoder_suite.run(
                    resolve(m),
                    threads,
                    dtypes=weights[suite],
                    peers=suite_peers,
                    quick=args.quick,
                    repeat=repeat,
                    progress=progress,
                )
        elif suite == "decoder":
            for m in models["decoder"]:
                results += decoder_suite.run(
                    m,
                    threads,
                    limits,
                    dtypes=weights[suite],
                    peers=suite_peers,
                    quick=args.quick,
                    repeat=repeat,
                    progress=progress,
                )
        else:
            from pyengine.bench import serve_suite  # needs httpx, as the server needs fastapi

            for m in models["serve"]:
                results += serve_suite.run(
                    m,
                    threads,
                    dtypes=weights[suite],
                    peers=suite_peers,
                    quick=args.quick,
                    progress=progress,
                )
    print()
    print(report.table(results, markdown=args.markdown))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": machine,
                    "versions": versions,
                    "limits": {t: lim.as_dict() for t, lim in limits.items()},
                    "results": [r.as_dict() for r in results],
                },
                f,
                indent=1,
            )
        progress(f"wrote {args.json}")
    if args.plot:
        report.plot(results, args.plot)
        progress(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
