"""The MLP activations: pyengine.ops.gelu (exact erf and tanh) and swiglu vs torch's
F.gelu and F.silu(gate) * up, same process, same threads. Default shape [4096, 1536]: the
all-MiniLM-L6-v2 intermediate activation of a 32 x 128-token batch (swiglu reads [4096, 3072]).
Medians (and the best sample: the machine may be shared) in ns per output element, the rate in
GB/s of bytes read + written per call next to the measured read bandwidth, and torch's time
over ours (> 1: pyengine faster).

    python bench/activations.py [--threads 1,2] [--shape 4096,1536] [--isa avx512] [--repeat 7]
"""

import argparse

import numpy as np

from pyengine import _C
from pyengine.bench.machine import describe_machine, measure_limits
from pyengine.bench.peers import installed, peer_threads, version
from pyengine.bench.timing import measure
from pyengine.ops import gelu, swiglu


def cases(rows, cols, isa, use_torch):
    """(name, bytes moved per call, pyengine callable, torch callable or None)."""
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((rows, cols))).astype(np.float32)  # [rows, cols]
    gate_up = (3 * rng.standard_normal((rows, 2 * cols))).astype(np.float32)  # [rows, 2 cols]
    out = np.empty((rows, cols), np.float32)  # [rows, cols]
    n_bytes = 4 * 2 * x.size  # one read and one write per element (swiglu: two reads)
    ours = {
        "gelu(erf)": lambda: gelu(x, approximate="none", out=out, isa=isa),
        "gelu(tanh)": lambda: gelu(x, approximate="tanh", out=out, isa=isa),
        "swiglu": lambda: swiglu(gate_up, out=out, isa=isa),
    }
    theirs = dict.fromkeys(ours)
    if use_torch:
        import torch
        import torch.nn.functional as F

        xt = torch.from_numpy(x)
        gt, ut = torch.from_numpy(gate_up).split(cols, dim=-1)
        theirs = {
            "gelu(erf)": lambda: F.gelu(xt),
            "gelu(tanh)": lambda: F.gelu(xt, approximate="tanh"),
            "swiglu": lambda: F.silu(gt) * ut,
        }
    for name, fn in ours.items():
        moved = n_bytes * 3 // 2 if name == "swiglu" else n_bytes
        yield name, moved, fn, theirs[name]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--shape", default="4096,1536")
    parser.add_argument("--isa", default=None, help="force an ISA level (default: the chosen one)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows, cols = (int(s) for s in args.shape.split(","))
    threads = [int(t) for t in args.threads.split(",")]
    use_torch = installed("torch")
    machine = describe_machine()
    isa = args.isa or machine["isa_level"]
    print(f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {isa}")
    print(f"# shape [{rows}, {cols}] fp32 | torch {version('torch') if use_torch else 'absent'}")
    n = rows * cols
    print(
        f"{'op':<11} {'thr':>3} {'ours ns/el':>10} {'(best)':>7} {'GB/s':>5} {'spread':>6} "
        f"{'torch ns/el':>11} {'(best)':>7} {'torch/ours':>10}"
    )
    for t in threads:
        limit = measure_limits(t, stream_bytes=1 << 28)
        print(f"# {t} thread(s): measured read bandwidth {limit.read_gbs:.1f} GB/s")
        previous = _C.get_num_threads()
        _C.set_num_threads(t)
        try:
            with peer_threads(t):
                for name, moved, ours, theirs in cases(rows, cols, isa, use_torch):
                    mine = measure(ours, repeat=args.repeat, min_seconds=0.1)
                    line = (
                        f"{name:<11} {t:>3} {mine.median / n * 1e9:>10.3f} "
                        f"{min(mine.samples) / n * 1e9:>7.3f} {moved / mine.median / 1e9:>5.1f} "
                        f"{mine.spread:>6.1%}"
                    )
                    if theirs is not None:
                        peer = measure(theirs, repeat=args.repeat, min_seconds=0.1)
                        line += (
                            f" {peer.median / n * 1e9:>11.3f} {min(peer.samples) / n * 1e9:>7.3f}"
                            f" {peer.median / mine.median:>10.2f}"
                        )
                    print(line)
        finally:
            _C.set_num_threads(previous)


if __name__ == "__main__":
    main()
