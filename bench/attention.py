"""fp32 attention: pyengine.ops.attention vs torch's scaled_dot_product_attention, same process,
same threads. Decode (one new token against a KV cache) cycles through one cache per layer, so
K and V come from beyond L2 as in a real forward step, and is reported in GB/s of K and V read
against the measured read bandwidth; causal prefill, and the bidirectional attention of an
encoder batch (all-MiniLM-L6-v2's shape by default: 32 sequences x 128 tokens, 12 heads of 32),
in GFLOP/s against the measured FMA peak.

    python bench/attention.py [--threads 1,2] [--heads 9:3] [--head-dim 64] [--repeat 7]
                              [--encoder 32x128x12x32] (batch x tokens x heads x head_dim)
"""

import argparse

import numpy as np

from pyengine import _C
from pyengine.bench.machine import describe_machine, measure_limits
from pyengine.bench.peers import installed, peer_threads, version
from pyengine.bench.timing import measure
from pyengine.ops import attention


def cycling(calls):
    """One callable that runs the next of `calls` each time."""
    state = {"i": 0}

    def run():
        calls[state["i"] % len(calls)]()
        state["i"] += 1

    return run


def decode_case(rng, n_heads, n_kv, d, keys, layers, use_torch):
    shape = (1, n_kv, keys, d)
    caches = [
        (rng.standard_normal(shape, np.float32), rng.standard_normal(shape, np.float32))
        for _ in range(layers)
    ]
    q = rng.standard_normal((1, 1, n_heads, d), np.float32)
    out = np.empty_like(q)
    ours = [lambda k=k, v=v: attention(q, k, v, start_pos=keys - 1, out=out) for k, v in caches]
    if not use_torch:
        return cycling(ours), None
    import torch
    import torch.nn.functional as F

    tq = torch.from_numpy(q).transpose(1, 2)
    tc = [(torch.from_numpy(k), torch.from_numpy(v)) for k, v in caches]
    theirs = [
        lambda k=k, v=v: F.scaled_dot_product_attention(tq, k, v, enable_gqa=True) for k, v in tc
    ]
    return cycling(ours), cycling(theirs)


def prefill_case(rng, n_heads, n_kv, d, tokens, use_torch):
    q = rng.standard_normal((1, tokens, n_heads, d), np.float32)
    k = rng.standard_normal((1, n_kv, tokens, d), np.float32)
    v = rng.standard_normal((1, n_kv, tokens, d), np.float32)
    out = np.empty_like(q)

    def ours():
        attention(q, k, v, start_pos=0, out=out)

    if not use_torch:
        return ours, None
    import torch
    import torch.nn.functional as F

    tq = torch.from_numpy(np.ascontiguousarray(q.transpose(0, 2, 1, 3)))
    tk, tv = torch.from_numpy(k), torch.from_numpy(v)

    def theirs():
        F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, enable_gqa=True)

    return ours, theirs


def encoder_case(rng, batch, tokens, n_heads, d, use_torch):
    q = rng.standard_normal((batch, tokens, n_heads, d), np.float32)
    k = rng.standard_normal((batch, n_heads, tokens, d), np.float32)
    v = rng.standard_normal((batch, n_heads, tokens, d), np.float32)
    out = np.empty_like(q)

    def ours():
        attention(q, k, v, start_pos=0, causal=False, out=out)

    if not use_torch:
        return ours, None
    import torch
    import torch.nn.functional as F

    tq = torch.from_numpy(np.ascontiguousarray(q.transpose(0, 2, 1, 3)))
    tk, tv = torch.from_numpy(k), torch.from_numpy(v)

    def theirs():
        F.scaled_dot_product_attention(tq, tk, tv)

    return ours, theirs


def int_list(text):
    return [int(x) for x in text.split(",") if x]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--heads", default="9:3", help="n_heads:n_kv_heads")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--decode-keys", default="512,2048,8192")
    parser.add_argument("--prefill-tokens", default="128,512,2048")
    parser.add_argument("--encoder", default="32x128x12x32", help="batch x tokens x heads x dim")
    parser.add_argument("--layers", type=int, default=16, help="decode caches cycled through")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n_heads, n_kv = (int(x) for x in args.heads.split(":"))
    d = args.head_dim
    use_torch = installed("torch")
    machine = describe_machine()
    print(f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {machine['isa_level']}")
    print(f"# heads {n_heads}:{n_kv}, head_dim {d}; torch {version('torch')}")
    rng = np.random.default_rng(0)
    for threads in (int(t) for t in args.threads.split(",")):
        limits = measure_limits(threads, stream_bytes=1 << 28)
        print(
            f"\n## {threads} thread(s): peak {limits.peak_gflops:.0f} GFLOP/s, "
            f"read {limits.read_gbs:.1f} GB/s"
        )
        _C.set_num_threads(threads)
        print("case                  pyengine          torch    torch/pyengine  of limit")
        with peer_threads(threads):
            for keys in int_list(args.decode_keys):
                ours, theirs = decode_case(rng, n_heads, n_kv, d, keys, args.layers, use_torch)
                t = measure(ours, repeat=args.repeat).median
                gbs = 2 * n_kv * keys * d * 4 / t / 1e9
                peer = measure(theirs, repeat=args.repeat).median if theirs else float("nan")
                print(
                    f"decode {keys:5d} keys  {t * 1e6:9.1f} us  {peer * 1e6:9.1f} us  "
                    f"{peer / t:8.2f}x  {gbs:6.1f} GB/s = {gbs / limits.read_gbs:.0%}"
                )
            for tokens in int_list(args.prefill_tokens):
                ours, theirs = prefill_case(rng, n_heads, n_kv, d, tokens, use_torch)
                t = measure(ours, repeat=args.repeat).median
                flops = 4 * n_heads * d * tokens * (tokens + 1) / 2  # causal: QK^T and PV
                peer = measure(theirs, repeat=args.repeat).median if theirs else float("nan")
                print(
                    f"prefill {tokens:4d} tokens {t * 1e3:8.2f} ms  {peer * 1e3:8.2f} ms  "
                    f"{peer / t:8.2f}x  {flops / t / 1e9:6.1f} GFLOP/s = "
                    f"{flops / t / 1e9 / limits.peak_gflops:.0%}"
                )
            if args.encoder:
                eb, et, eh, ed = (int(x) for x in args.encoder.split("x"))
                ours, theirs = encoder_case(rng, eb, et, eh, ed, use_torch)
                t = measure(ours, repeat=args.repeat).median
                flops = 4 * eb * eh * ed * et * et  # bidirectional: QK^T and PV
                peer = measure(theirs, repeat=args.repeat).median if theirs else float("nan")
                print(
                    f"encoder {args.encoder}  {t * 1e3:8.2f} ms  {peer * 1e3:8.2f} ms  "
                    f"{peer / t:8.2f}x  {flops / t / 1e9:6.1f} GFLOP/s = "
                    f"{flops / t / 1e9 / limits.peak_gflops:.0%}"
                )


if __name__ == "__main__":
    main()
