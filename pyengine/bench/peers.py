"""The engines pyengine is compared with, used the way their users use them, each pinned to
the same thread count as pyengine for a measurement."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util

# peer -> (the modules it needs, how to install them, the suites it takes part in)
PEERS = {
    "numpy": (("numpy",), "pip install numpy", ("kernels",)),
    "torch": (
        ("torch", "transformers", "sentence_transformers", "accelerate"),
        'pip install "torch==2.13.0" transformers sentence-transformers accelerate',
        ("kernels", "encoder", "decoder"),
    ),
    # the same transformers / sentence-transformers model with bf16 weights: torch at its
    # best where the CPU multiplies bf16 natively (AVX512-BF16, AMX)
    "torch-bf16": (
        ("torch", "transformers", "sentence_transformers", "accelerate"),
        'pip install "torch==2.13.0" transformers sentence-transformers accelerate',
        ("encoder", "decoder"),
    ),
    "onnxruntime": (
        ("onnxruntime", "onnx", "onnxscript", "torch", "transformers"),
        "pip install onnxruntime onnx onnxscript",
        ("encoder",),
    ),
    # the same export quantized by ONNX Runtime's quantize_dynamic: its int8 path
    "onnxruntime-int8": (
        ("onnxruntime", "onnx", "onnxscript", "torch", "transformers"),
        "pip install onnxruntime onnx onnxscript",
        ("encoder",),
    ),
    "llama.cpp": (
        ("llama_cpp",),
        "pip install llama-cpp-python (compiles from source)",
        ("decoder",),
    ),
    # its OpenAI-compatible server (python -m llama_cpp.server), whose extra brings its own
    # web stack
    "llama.cpp-server": (
        (
            "llama_cpp",
            "llama_cpp.server",
            "sse_starlette",
            "starlette_context",
            "pydantic_settings",
        ),
        "pip install 'llama-cpp-python[server]'",
        ("serve",),
    ),
}


# what each peer computes with, where its name does not say it (notes of rows whose pyengine
# weights differ)
PEER_PRECISION = {
    "numpy": "fp32",
    "torch": "fp32",
    "onnxruntime": "fp32",
    "onnxruntime-int8": "int8 (quantize_dynamic)",
    "llama.cpp": "on the GGUF's blocks",
    "llama.cpp-server": "on the GGUF's blocks",
}


def peer_installed(name: str) -> bool:
    return all(installed(m) for m in PEERS[name][0])


def default_peers(suite: str) -> list[str]:
    """The peers a suite runs when none are named: every installed one that takes part in it,
    less those skipped by default on this CPU (peer_skipped_by_default)."""
    return [
        p
        for p, (_, _, suites) in PEERS.items()
        if suite in suites and peer_installed(p) and peer_skipped_by_default(p) is None
    ]


def peer_skipped_by_default(name: str) -> str | None:
    """Why an installed peer is left out unless --peers names it, or None. torch-bf16 without
    bf16 hardware: torch converts every bf16 product to fp32 and back (all-MiniLM-L6-v2 on an
    AVX2 CPU: 8x slower than torch fp32), which is not torch at its best and costs minutes."""
    if name != "torch-bf16":
        return None
    from pyengine import cpu_info

    features = cpu_info()["features"]
    if features.get("avx512_bf16") or features.get("amx_bf16"):
        return None
    return "no bf16 hardware (AVX512-BF16, AMX) on this CPU, where torch emulates bf16"


def peer_versions() -> dict[str, str]:
    dists = {
        "numpy": "numpy",
        "torch": "torch",
        "transformers": "transformers",
        "sentence-transformers": "sentence-transformers",
        "onnxruntime": "onnxruntime",
        "llama-cpp-python": "llama_cpp_python",
    }
    return {label: version(dist) for label, dist in dists.items()}


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def peer_threads(n: int):
    """Limits numpy's BLAS (through threadpoolctl) and torch's intra-op pool to n threads."""
    with contextlib.ExitStack() as stack:
        if installed("threadpoolctl"):
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
        if installed("torch"):
            import torch

            previous = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, previous)
        yield


def blas_description() -> str:
    """Which BLAS numpy runs, as threadpoolctl sees it."""
    if not installed("threadpoolctl"):
        return "unknown (pip install threadpoolctl)"
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    libs = [
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return ", ".join(libs) or "unknown"
