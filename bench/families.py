"""Prefill and decode speed of the newer small-model families, random weights at real shapes:
a Gemma-3-270M-shaped model (18 layers, hidden 640, 4 heads of 256 over 1 KV head, window 512,
a tied 262,144 x 640 LM head) and a Qwen3-0.6B-shaped one (28 layers, hidden 1024, 16 heads of
128 over 8, tied 151,936-token head). pyengine with bfloat16 and float32 weights next to
transformers+torch in fp32 and bf16 (the same weights), one process, one thread count at a
time, batch 1; decode tokens/s against the bandwidth roofline (weight bytes per token / measured
read bandwidth), and the LM head's share of those bytes.

    python bench/families.py [--models gemma3-270m,qwen3-0.6b] [--threads 1,2] [--prompt 128]
                             [--new 32] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch
import transformers

import pyengine
from pyengine import _C
from pyengine.bench import decoder_suite
from pyengine.bench.machine import describe_machine

SHAPES = {
    "gemma3-270m": lambda: (
        transformers.Gemma3TextConfig(
            vocab_size=262144,
            hidden_size=640,
            intermediate_size=2048,
            num_hidden_layers=18,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=256,
            query_pre_attn_scalar=256,
            sliding_window=512,
            max_position_embeddings=32768,
        ),
        transformers.Gemma3ForCausalLM,
    ),
    "qwen3-0.6b": lambda: (
        transformers.Qwen3Config(
            vocab_size=151936,
            hidden_size=1024,
            intermediate_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            tie_word_embeddings=True,
            max_position_embeddings=40960,
        ),
        transformers.Qwen3ForCausalLM,
    ),
}


def build(name: str, folder: str):
    torch.manual_seed(0)
    config, cls = SHAPES[name]()
    model = cls(config).eval()
    model.save_pretrained(folder)  # float32 safetensors
    return model


def run(name: str, threads: int, prompt: int, new: int, repeat: int, read_gbs: float) -> list:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        hf = build(name, folder)
        ids = decoder_suite.prompt_ids(hf.config.vocab_size, prompt)
        torch.set_num_threads(threads)
        for torch_dtype in ("float32", "bfloat16"):
            peer = hf.to(getattr(torch, torch_dtype))
            pre, dec = decoder_suite.torch_prefill_and_decode(peer, ids, new, repeat)
            rows.append((f"torch {torch_dtype}", prompt / pre.median, 1 / dec.median, None))
        hf = peer = None
        pyengine.set_num_threads(threads)
        for dtype in ("bfloat16", "float32"):
            model = pyengine.load(folder, dtype=dtype)
            pre = decoder_suite.pyengine_prefill(model, ids, repeat)
            dec = decoder_suite.pyengine_decode(model, ids, new)["timing"]
            streamed = decoder_suite.weight_bytes_per_token(model)
            width = 2 if dtype == "bfloat16" else 4
            head = model.config.vocab_size * model.config.hidden_size * width
            roof = read_gbs * 1e9 / streamed
            rows.append((f"pyengine {dtype}", prompt / pre.median, 1 / dec.median,
                         (streamed, head, roof)))  # fmt: skip
            model = None
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=",".join(SHAPES))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    print(describe_machine())
    out = []
    for t in (int(x) for x in args.threads.split(",")):
        pyengine.set_num_threads(t)
        read_gbs = _C.probe_read_bandwidth_gbs(1 << 30, 5)
        for name in args.models.split(","):
            rows = run(name, t, args.prompt, args.new, args.repeat, read_gbs)
            torch_best = {k: max(r[i] for r in rows if r[0].startswith("torch")) for k, i in
                          (("prefill", 1), ("decode", 2))}  # fmt: skip
            print(f"\n{name}, {t} thread(s), read bandwidth {read_gbs:.1f} GB/s, "
                  f"prompt {args.prompt}, {args.new} new tokens")  # fmt: skip
            for label, pre, dec, extra in rows:
                line = f"  {label:<18} prefill {pre:8.1f} tok/s   decode {dec:7.2f} tok/s"
                if extra:
                    streamed, head, roof = extra
                    line += (f"   ({pre / torch_best['prefill']:.2f}x / "
                             f"{dec / torch_best['decode']:.2f}x best torch; "
                             f"{streamed / 1e6:.0f} MB/token, LM head {head / streamed:.0%}; "
                             f"roofline {roof:.1f} tok/s, {dec / roof:.0%})")  # fmt: skip
                print(line, flush=True)
                out.append({"model": name, "threads": t, "engine": label, "prefill_tok_s": pre,
                            "decode_tok_s": dec, "read_gbs": read_gbs,
                            "bytes_per_token": extra[0] if extra else None})  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
