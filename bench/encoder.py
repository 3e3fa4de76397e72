"""Encoder speed: all-MiniLM-L6-v2 sentence embeddings, throughput (batch 32 x 128 tokens,
sentences/s) and batch-1 latency (16 and 128 tokens, ms), at 1 and 2 threads, next to
sentence-transformers on torch fp32 and ONNX Runtime (ONNX export, all graph optimizations),
all measured in the same run on the same token batches.

    python bench/encoder.py [--threads 1,2] [--repeat 7] [--json out.json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import pyengine
from pyengine.bench import encoder_suite as es
from pyengine.bench.machine import describe_machine
from pyengine.bench.peers import installed, peer_threads, version
from pyengine.loaders import resolve

WORKLOADS = [("throughput", 32, 128), ("latency", 1, 16), ("latency", 1, 128)]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args()
    folder = resolve("all-minilm-l6-v2")
    machine = describe_machine()
    print(
        f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {machine['isa_level']} | "
        f"torch {version('torch')}, sentence-transformers {version('sentence-transformers')}, "
        f"onnxruntime {version('onnxruntime')}"
    )
    model = pyengine.load(folder)
    workdir = Path(tempfile.mkdtemp(prefix="pyengine-bench-"))
    report = {"machine": machine, "rows": []}
    print(
        f"{'threads':>7} {'workload':>22} {'engine':>12} {'median':>10} {'rate':>14} "
        f"{'pyengine vs':>11}"
    )
    for threads in (int(t) for t in args.threads.split(",")):
        peers = []
        if installed("sentence_transformers"):
            peers.append(es.TorchPeer(folder))
        if installed("onnxruntime") and installed("onnxscript"):
            print("exporting to ONNX ...", file=sys.stderr, flush=True)
            peers.append(es.OnnxRuntimePeer(folder, workdir, threads))
        for kind, batch, length in WORKLOADS:
            feats = es.token_batch(batch, length, model.config.vocab_size)
            previous = pyengine.get_num_threads()
            pyengine.set_num_threads(threads)
            try:
                with peer_threads(threads):
                    ours = es.time_embed(lambda f: es.pyengine_embed(model, f), feats, args.repeat)
                    theirs = {p.name: es.time_embed(p.embed, feats, args.repeat) for p in peers}
                    # the same embeddings, or the comparison means nothing
                    for p in peers:
                        diff = np.abs(p.embed(feats) - es.pyengine_embed(model, feats)).max()
                        assert diff < 1e-4, f"{p.name} disagrees with pyengine by {diff}"
            finally:
                pyengine.set_num_threads(previous)
            label = f"{kind} {batch}x{length}"
            for name, t in [("pyengine", ours), *theirs.items()]:
                rate = (
                    f"{batch / t.median:.1f} sent/s"
                    if kind == "throughput"
                    else f"{t.median * 1e3:.2f} ms"
                )
                ratio = "" if name == "pyengine" else f"{t.median / ours.median:.2f}x"
                print(
                    f"{threads:>7} {label:>22} {name:>12} {t.median * 1e3:>8.2f}ms "
                    f"{rate:>14} {ratio:>11}"
                )
            report["rows"].append(
                {
                    "threads": threads,
                    "workload": label,
                    "seconds": {
                        "pyengine": ours.samples,
                        **{n: t.samples for n, t in theirs.items()},
                    },
                }
            )
    if not installed("onnxruntime"):
        print("onnxruntime: not installed (pip install onnxruntime onnx onnxscript)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
