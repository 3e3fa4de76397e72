"""Decoder LLM speed: SmolLM2-135M-Instruct prefill (512-token prompt) and decode (128 new
tokens), batch 1, next to transformers+torch fp32 on the same GGUF and llama.cpp (through
llama-cpp-python, when installed) in the same run; then a random-weight 1.1B Llama's decode
speed against its memory-bandwidth roofline (weight bytes per token / measured bandwidth).

    python bench/decoder.py [--threads 1,2] [--prompt 512] [--new 128] [--skip-1b] [--json f]
"""

import argparse
import json
import sys

import pyengine
from pyengine.bench import decoder_suite as ds
from pyengine.bench.machine import describe_machine, measure_limits
from pyengine.bench.peers import installed, version
from pyengine.loaders import resolve


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def smollm2(args, threads_list, limits, report):
    path = resolve("smollm2-135m-instruct")
    model = pyengine.load(path)
    ids = ds.prompt_ids(model.vocab_size, args.prompt)
    hf = None
    if installed("torch") and installed("transformers") and installed("accelerate"):
        import torch
        import transformers

        log("loading transformers' copy of the GGUF ...")
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, torch_dtype=torch.float32
        ).eval()
    bytes_per_token = ds.weight_bytes_per_token(model.config)
    print(
        f"\n## SmolLM2-135M-Instruct ({path.name}, fp32 compute), prompt {args.prompt}, "
        f"{args.new} new tokens, batch 1"
    )
    print(
        f"{'threads':>7} {'engine':>12} {'prefill tok/s':>14} {'decode tok/s':>13} "
        f"{'prefill x':>9} {'decode x':>8}  notes"
    )
    for t in threads_list:
        log(f"SmolLM2 pyengine, {t} thread(s) ...")
        pre = ds.with_threads(t, ds.pyengine_prefill, model, ids, args.repeat)
        dec = ds.with_threads(t, ds.pyengine_decode, model, ids, args.new)
        ours = {"prefill": args.prompt / pre.median, "decode": 1 / dec["timing"].median}
        roof = limits[t].read_gbs * 1e9 / bytes_per_token
        rows = {"pyengine": ours}
        notes = {
            "pyengine": f"python overhead {100 * dec['python_overhead']:.1f}% of a decode "
            f"step; roofline {roof:.0f} tok/s"
        }
        if hf is not None:
            log(f"SmolLM2 transformers, {t} thread(s) ...")
            p, d = ds.with_threads(t, ds.torch_prefill_and_decode, hf, ids, args.new, args.repeat)
            rows["torch"] = {"prefill": args.prompt / p.median, "decode": 1 / d.median}
        if installed("llama_cpp"):
            log(f"SmolLM2 llama.cpp, {t} thread(s) ...")
            p, d = ds.with_threads(
                t, ds.llama_cpp_prefill_and_decode, path, ids, args.new, t, args.repeat
            )
            rows["llama.cpp"] = {"prefill": args.prompt / p.median, "decode": 1 / d.median}
            notes["llama.cpp"] = "runs the Q4_1 weights natively (4.5 bits/weight)"
        for name, r in rows.items():
            px = ours["prefill"] / r["prefill"]
            dx = ours["decode"] / r["decode"]
            print(
                f"{t:>7} {name:>12} {r['prefill']:>14.1f} {r['decode']:>13.1f} "
                f"{px:>8.2f}x {dx:>7.2f}x  {notes.get(name, '')}"
            )
        report["smollm2"].append(
            {
                "threads": t,
                "engines": rows,
                "python_overhead": dec["python_overhead"],
                "roofline_tok_s": roof,
            }
        )
    if not installed("llama_cpp"):
        print("llama.cpp: not installed (pip install llama-cpp-python; it compiles from source)")


def llama_1b(args, threads_list, limits, report):
    log("building a random-weight 1.1B Llama (TinyLlama shape) ...")
    cfg, tensors = ds.random_llama()
    from pyengine.models.decoder import DecoderModel

    model = DecoderModel(cfg, tensors)
    del tensors
    ids = ds.prompt_ids(cfg.vocab_size, 32)
    gb = ds.weight_bytes_per_token(cfg) / 1e9
    print(
        f"\n## random 1.1B Llama (hidden 2048, 22 layers, 32/4 heads), fp32: {gb:.2f} GB of "
        f"weights per token"
    )
    print(
        f"{'threads':>7} {'decode tok/s':>13} {'roofline tok/s':>15} {'of roofline':>12} "
        f"{'GB/s':>6}"
    )
    for t in threads_list:
        log(f"1.1B decode, {t} thread(s) ...")
        dec = ds.with_threads(t, ds.pyengine_decode, model, ids, args.new_1b)
        tok_s = 1 / dec["timing"].median
        roof = limits[t].read_gbs / gb
        print(
            f"{t:>7} {tok_s:>13.2f} {roof:>15.2f} {100 * tok_s / roof:>11.0f}% {tok_s * gb:>6.1f}"
        )
        report["llama_1b"].append({"threads": t, "decode_tok_s": tok_s, "roofline_tok_s": roof})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--new-1b", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-1b", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    threads_list = [int(t) for t in args.threads.split(",")]
    machine = describe_machine()
    print(
        f"# {machine['cpu']} | {machine['cpus']} CPUs | ISA level {machine['isa_level']} | "
        f"pyengine {pyengine.__version__}, torch {version('torch')}, transformers "
        f"{version('transformers')}, llama-cpp-python {version('llama_cpp_python')}"
    )
    limits = {t: measure_limits(t) for t in threads_list}
    for t, lim in limits.items():
        print(
            f"# {t} thread(s): read bandwidth {lim.read_gbs:.1f} GB/s, FMA peak "
            f"{lim.peak_gflops:.0f} GFLOP/s"
        )
    report = {
        "machine": machine,
        "limits": {t: v.as_dict() for t, v in limits.items()},
        "smollm2": [],
        "llama_1b": [],
    }
    smollm2(args, threads_list, limits, report)
    if not args.skip_1b:
        llama_1b(args, threads_list, limits, report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
