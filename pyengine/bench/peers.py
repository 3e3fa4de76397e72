"""The engines pyengine is compared with, used the way their users use them, each pinned to
the same thread count as pyengine for a measurement."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util

INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "torch": "pip install torch==2.13.0",
}


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
