"""Encoder speed: all-MiniLM-L6-v2 sentence embeddings, throughput (batch 32 x 128 tokens,
sentences/s) and batch-1 latency (16 and 128 tokens, ms), at 1 and 2 threads, pyengine with
float32, bfloat16 and int8 (Q8_0) weights next to sentence-transformers on torch (fp32, and bf16
where the CPU has bf16 hardware) and ONNX Runtime (ONNX export with dynamic axes, all graph
optimizations), each peer measured once in the same run on the same token batches
(tokenization excluded).

    python bench/encoder.py [--threads 1,2] [--dtypes float32,bfloat16,int8] [--repeat 7]
"""

import sys

from pyengine.bench.runner import main

if __name__ == "__main__":
    # no --peers: the runner's defaults (torch-bf16 only on a CPU with bf16 hardware)
    sys.exit(main(["--suite", "encoder", "--threads", "1,2", *sys.argv[1:]]))
