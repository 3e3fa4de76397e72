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
    "onnxruntime": (
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


def peer_installed(name: str) -> bool:
    return all(installed(m) for m in PEERS[name][0])


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
