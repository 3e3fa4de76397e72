"""The `pyengine` command.

pyengine generate "Once upon a time" --model smollm2-135m-instruct --max-new-tokens 64
pyengine perplexity --model smollm2-135m-instruct --text book.txt --window 512
"""

from __future__ import annotations

import argparse
import sys

from pyengine.loaders import LoaderError


def _generate(args) -> int:
    import pyengine

    model = pyengine.load(args.model, dtype=args.dtype, threads=args.threads)
    stream = model.generate(
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        chat=args.chat,
        stream=True,
    )
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    stats = model.last_generation
    prefill_s = stats["prefill_seconds"]
    decode_s = stats["decode_seconds"]
    print(
        f"prefill: {stats['prompt_tokens']} tokens in {prefill_s * 1e3:.1f} ms "
        f"({stats['prompt_tokens'] / max(prefill_s, 1e-9):.1f} tokens/s); "
        f"decode: {stats['decode_steps']} tokens in {decode_s * 1e3:.1f} ms "
        f"({stats['decode_steps'] / max(decode_s, 1e-9):.1f} tokens/s); "
        f"threads {pyengine.get_num_threads()}",
        file=sys.stderr,
    )
    return 0


def _encode(args) -> int:
    import json

    import numpy as np

    import pyengine

    texts = list(args.texts)
    if args.input:
        with open(args.input, encoding="utf-8") as f:
            texts += [line.rstrip("\n") for line in f]
    if not texts:
        raise ValueError("no texts: pass them as arguments or with --input FILE")
    model = pyengine.load(args.model, dtype=args.dtype, threads=args.threads)
    if not hasattr(model, "encode"):
        raise ValueError(f"{args.model} is not an encoder model")
    show = len(texts) > args.batch_size and sys.stderr.isatty() or args.progress

    def progress(done):
        if show:
            width = 30
            filled = width * done // len(texts)
            print(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{len(texts)}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    vectors = model.encode(texts, batch_size=args.batch_size, progress=progress)
    if show:
        print(file=sys.stderr)
    if args.output and args.output.endswith(".npy"):
        np.save(args.output, vectors)
        print(
            f"wrote {vectors.shape[0]} embeddings of dimension {vectors.shape[1]} to {args.output}",
            file=sys.stderr,
        )
        return 0
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for text, vec in zip(texts, vectors):
            out.write(json.dumps({"text": text, "embedding": [float(v) for v in vec]}) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _serve(args) -> int:
    try:
        from pyengine.serve.app import load_app, serve
    except ImportError as e:
        print(
            f"pyengine: error: serve needs the serve extra: pip install 'pyengine[serve]' ({e})",
            file=sys.stderr,
        )
        return 2
    options = dict(
        kv_cache_gb=args.kv_cache_gb,
        max_batch=args.max_batch,
        max_step_tokens=args.max_step_tokens,
        prefill_while_decoding=args.prefill_while_decoding,
        max_queue=args.max_queue,
        prefix_caching=not args.no_prefix_caching,
        deterministic=args.deterministic,
        default_max_tokens=args.default_max_tokens,
        embedding_model=args.embedding_model,
        dtype=args.dtype,
    )
    where = f"http://{args.host}:{args.port}/v1"
    if args.ray:
        from pyengine.ray import serve_on_ray

        print(
            f"pyengine: serving {args.model} on Ray, {args.replicas} replicas x "
            f"{args.threads or 1} threads, at {where}",
            file=sys.stderr,
            flush=True,
        )
        serve_on_ray(args.model, args.replicas, args.threads, args.host, args.port, **options)
        return 0
    app = load_app(args.model, threads=args.threads, **options)
    print(f"pyengine: serving {args.model} on {where}", file=sys.stderr, flush=True)
    serve(app, host=args.host, port=args.port)
    return 0


def _perplexity(args) -> int:
    import json

    import pyengine
    from pyengine.generation.perplexity import default_text_path, perplexity

    path = args.text or default_text_path()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    options = {} if args.dtype is None else {"dtype": args.dtype}  # None: load()'s default
    model = pyengine.load(args.model, threads=args.threads, **options)
    result = perplexity(model, text, window=args.window, stride=args.stride)
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "dtype": getattr(model, "dtype", args.dtype),
                    "text": path,
                    "threads": pyengine.get_num_threads(),
                    **vars(result),
                }
            )
        )
        return 0
    overlap = f", stride {result.stride}" if result.stride != result.window else ""
    plural = "s" if result.windows != 1 else ""
    print(
        f"perplexity {result.ppl:.2f} over {result.tokens_scored} tokens ({result.windows} "
        f"window{plural} of {result.window}{overlap}) in {result.seconds:.1f} s"
    )
    return 0


def add_dtype_argument(parser) -> None:
    from pyengine.api import DTYPES

    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="how linear-layer weights are stored (auto: as the file stores them, GGUF "
        "quantized blocks run natively; int8/q4: quantized at load; bfloat16: half the bytes)",
    )


def _pack(args) -> int:
    from pyengine.pack import pack, verify

    if args.verify:
        verify(args.verify)
        print(f"{args.verify}: every blob matches its CRC-32")
        return 0
    if not (args.model and args.out):
        raise ValueError("pyengine pack MODEL --out FILE (or pyengine pack --verify FILE)")
    info = pack(args.model, args.out, dtype=args.dtype or "auto", threads=args.threads)
    src = info["source"]
    print(
        f"wrote {info['path']}: {info['bytes'] / 1e6:.1f} MB, {info['layers']} layers packed "
        f"for the {info['isa']} kernels, in {info['seconds']:.1f} s (source {src['path']}, "
        f"sha256 {src['sha256'][:16]}...)"
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyengine", description="CPU inference for fixed-weight transformer models"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="stream a continuation of a prompt")
    gen.add_argument("prompt")
    gen.add_argument(
        "--model",
        default="smollm2-135m-instruct",
        help="short name, Hugging Face folder or .gguf file",
    )
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--threads", type=int, default=None)
    add_dtype_argument(gen)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--chat", action="store_true", help="apply the model's chat template")
    enc = sub.add_parser("encode", help="sentence embeddings of texts")
    enc.add_argument("texts", nargs="*")
    enc.add_argument(
        "--model",
        default="all-minilm-l6-v2",
        help="short name or sentence-transformers / Hugging Face folder",
    )
    enc.add_argument("--input", help="a text file, one text per line")
    enc.add_argument("--output", help="write JSON lines here, or a .npy array [n, dim]")
    enc.add_argument("--batch-size", type=int, default=32)
    enc.add_argument("--threads", type=int, default=None)
    add_dtype_argument(enc)
    enc.add_argument("--progress", action="store_true", help="show progress even when piped")
    srv = sub.add_parser("serve", help="an OpenAI-compatible HTTP server (needs .[serve])")
    srv.add_argument(
        "--model",
        default="smollm2-135m-instruct",
        help="decoder: short name, Hugging Face folder or .gguf file",
    )
    srv.add_argument("--embedding-model", default=None, help="an encoder to serve beside it")
    add_dtype_argument(srv)
    srv.add_argument("--threads", type=int, default=None)
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--kv-cache-gb", type=float, default=1.0, help="KV pool size (GiB)")
    srv.add_argument("--max-batch", type=int, default=64, help="sequences per step, at most")
    srv.add_argument("--max-step-tokens", type=int, default=512, help="tokens per step, at most")
    srv.add_argument(
        "--prefill-while-decoding",
        type=int,
        default=None,
        help="at most this many prompt tokens per step while other sequences decode (bounds "
        "their stalls when requests arrive one by one; default: --max-step-tokens)",
    )
    srv.add_argument("--max-queue", type=int, default=1024, help="waiting requests before 503")
    srv.add_argument("--default-max-tokens", type=int, default=256)
    srv.add_argument("--no-prefix-caching", action="store_true")
    srv.add_argument(
        "--deterministic",
        action="store_true",
        help="a request's output is bit-identical alone or in any batch (slower)",
    )
    srv.add_argument(
        "--ray",
        action="store_true",
        help="run --replicas copies on Ray Serve (needs .[ray]); --threads is per replica",
    )
    srv.add_argument("--replicas", type=int, default=1, help="with --ray: replicas to run")
    ppl = sub.add_parser("perplexity", help="perplexity of a decoder on a text file")
    ppl.add_argument(
        "--model",
        default="smollm2-135m-instruct",
        help="decoder: short name, Hugging Face folder or .gguf file",
    )
    ppl.add_argument(
        "--text",
        default=None,
        help="a UTF-8 text file (default: this Python's LICENSE.txt, about 14 kB of English)",
    )
    # Not validated here: pyengine.load names the dtypes it takes; omitted, its default applies.
    ppl.add_argument("--dtype", default=None, help="weight dtype (default: pyengine.load's)")
    ppl.add_argument("--threads", type=int, default=None)
    ppl.add_argument(
        "--window",
        type=int,
        default=None,
        help="tokens per forward pass (default: the context length, at most 512)",
    )
    ppl.add_argument(
        "--stride",
        type=int,
        default=None,
        help="tokens between window starts (default: the window; a smaller stride overlaps them)",
    )
    ppl.add_argument("--json", action="store_true", help="print one JSON object")
    pck = sub.add_parser(
        "pack",
        help="write a model's weights packed for this CPU to one file, which pyengine.load "
        "memory-maps (shared by every process, no repacking)",
    )
    pck.add_argument("model", nargs="?", help="short name, Hugging Face folder or .gguf file")
    pck.add_argument("--out", help="the pack file to write")
    pck.add_argument(
        "--verify", metavar="FILE", help="check a pack file's every blob against its CRC-32"
    )
    add_dtype_argument(pck)
    pck.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    commands = {
        "pack": _pack,
        "generate": _generate,
        "encode": _encode,
        "serve": _serve,
        "perplexity": _perplexity,
    }
    try:
        return commands[args.command](args)
    except (LoaderError, ValueError, TypeError, OSError) as e:
        print(f"pyengine: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
