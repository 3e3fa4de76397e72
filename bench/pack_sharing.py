"""Pack files on one machine: load time and memory of N processes (replicas) running one model
from its source (each repacks its own copy) and from a pack file (each maps the same file),
and decode speed from each (a mapped file has ordinary 4 KiB pages; packed buffers ask for huge
pages).

    python bench/pack_sharing.py [--model smollm2-135m-instruct] [--dtype auto]
                                 [--processes 1,2] [--new 64] [--repeat 5] [--json out.json]

Each process loads with 1 thread, runs one forward pass, reports its load time and its
/proc/self/smaps_rollup (Rss; Pss, which splits shared pages among the processes mapping them;
Private), then waits until every process of its group has loaded and only then reads its memory, so
that shared pages count as shared. The group's memory is the sum of its PSS (exact: each
shared page is split among the processes mapping it), also given beyond that of as many bare
Python processes that imported pyengine. The page cache holds the source or pack file
already (it was just read or written), as it would on a server whose replicas restart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import pyengine
imported = time.perf_counter()
if sys.argv[1] != "-":
    model = pyengine.load(sys.argv[1], dtype=sys.argv[2], threads=1)
    loaded = time.perf_counter()
    model.forward([[1, 2, 3, 4]])
    ran = time.perf_counter()
else:
    loaded = ran = imported
print(json.dumps({"import_s": imported - t0, "load_s": loaded - imported,
                  "first_forward_s": ran - loaded}), flush=True)
sys.stdin.readline()  # every process of the group has loaded: now read the shares
mem = {}
for line in open("/proc/self/smaps_rollup"):
    parts = line.split()
    if parts[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:", "Shared_Clean:"):
        mem[parts[0][:-1]] = int(parts[1]) * 1024
print(json.dumps(mem), flush=True)
sys.stdin.readline()  # stay alive until every process has read its own
"""


def run_group(source: str, dtype: str, n: int) -> dict:
    """n processes loading `source` at once ("-": import only); their reports (read once all
    have loaded) and the group's memory: the sum of their PSS."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, source, dtype],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    reports = [json.loads(p.stdout.readline()) for p in procs]

    def tell_all():
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()

    tell_all()
    for p, r in zip(procs, reports):
        r.update(json.loads(p.stdout.readline()))
    tell_all()
    for p in procs:
        p.wait()
    return {"reports": reports, "group_pss": sum(r["Pss"] for r in reports)}


def decode_speed(source: str, dtype: str, new: int, repeat: int) -> float:
    """Median greedy decode tokens/s at 1 thread (a separate process per source)."""
    code = f"""
import json, time, pyengine
m = pyengine.load({source!r}, dtype={dtype!r}, threads=1)
m.generate("The quick brown fox", max_new_tokens=8)
rates = []
for _ in range({repeat}):
    m.generate("The quick brown fox", max_new_tokens={new})
    g = m.last_generation
    rates.append(g["decode_steps"] / g["decode_seconds"])
print(json.dumps(sorted(rates)[len(rates) // 2]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from pyengine.bench.machine import describe_machine
    from pyengine.loaders import resolve
    from pyengine.pack import pack

    counts = [int(n) for n in args.processes.split(",")]
    source = str(resolve(args.model))
    result = {"machine": describe_machine(), "model": args.model, "dtype": args.dtype}
    with tempfile.TemporaryDirectory() as tmp:
        pack_path = str(Path(tmp) / "model.pack")
        info = pack(source, pack_path, dtype=args.dtype, threads=1)
        result["pack"] = {k: info[k] for k in ("bytes", "seconds", "isa", "layers")}
        result["source_bytes"] = info["source"]["bytes"]
        print(
            f"packed {args.model} ({args.dtype}) in {info['seconds']:.2f} s: "
            f"{info['bytes'] / 1e6:.1f} MB (source {info['source']['bytes'] / 1e6:.1f} MB)"
        )
        rows = []
        for n in counts:
            bare = run_group("-", args.dtype, n)["group_pss"]
            for kind, path in (("source", source), ("pack", pack_path)):
                g = run_group(path, args.dtype, n)
                reps = g["reports"]
                row = {
                    "from": kind,
                    "processes": n,
                    "load_s": statistics.median(r["load_s"] for r in reps),
                    "first_forward_s": statistics.median(r["first_forward_s"] for r in reps),
                    "rss_mb": statistics.median(r["Rss"] for r in reps) / 1e6,
                    "pss_mb": statistics.median(r["Pss"] for r in reps) / 1e6,
                    "private_mb": statistics.median(
                        r["Private_Clean"] + r["Private_Dirty"] for r in reps
                    )
                    / 1e6,
                    "group_mb": g["group_pss"] / 1e6,
                    "group_beyond_bare_mb": (g["group_pss"] - bare) / 1e6,
                }
                rows.append(row)
                print(
                    f"{kind:6s} x{n}: load {row['load_s']:.2f} s (median), first forward "
                    f"{row['first_forward_s'] * 1e3:.0f} ms, per process RSS "
                    f"{row['rss_mb']:.0f} MB, PSS {row['pss_mb']:.0f} MB, private "
                    f"{row['private_mb']:.0f} MB; the group {row['group_mb']:.0f} MB (PSS sum), "
                    f"{row['group_beyond_bare_mb']:.0f} MB beyond as many bare processes"
                )
        result["groups"] = rows
        speeds = {
            kind: decode_speed(path, args.dtype, args.new, args.repeat)
            for kind, path in (("source", source), ("pack", pack_path))
        }
        result["decode_tokens_per_s"] = speeds
        print(
            f"decode (1 thread, {args.new} tokens, median of {args.repeat}): source "
            f"{speeds['source']:.1f} tok/s, pack {speeds['pack']:.1f} tok/s "
            f"({speeds['pack'] / speeds['source']:.2f}x)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
