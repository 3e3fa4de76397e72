"""Serving speed: `pyengine serve` of SmolLM2-135M-Instruct (started as a subprocess, one per
weight dtype and thread count) under 1, 4, 16 and 64 concurrent streaming chat clients, 128
tokens each, at 1 and 2 threads: aggregate generated tokens/s, time to first token and
inter-token latency (p50, p99), failed requests, next to llama-cpp-python's OpenAI server on the
same GGUF under the same load (when installed: pip install 'llama-cpp-python[server]').

    python bench/serve.py [--threads 1,2] [--dtypes float32,bfloat16] [--quick] [--json out.json]
"""

import sys

from pyengine.bench.runner import main

if __name__ == "__main__":
    sys.exit(main(["--suite", "serve", "--threads", "1,2", *sys.argv[1:]]))
