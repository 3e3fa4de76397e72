"""pytest-benchmark versions of the key cases (run: pytest bench/ --benchmark-only). These are
benchmarks, not tests: they assert nothing about speed; compare runs with pytest-benchmark's
--benchmark-compare. Peers are timed in the same session as their own benchmark entries."""

from __future__ import annotations

import numpy as np
import pytest

import pyengine
from pyengine.ops import Bf16Linear, Linear, attention, rms_norm

CASES = {
    "decode 576->1536 M=1": (1, 576, 1536),
    "prefill 576->1536 M=512": (512, 576, 1536),
    "decode 2048->5632 M=1": (1, 2048, 5632),
    "square 1024": (1024, 1024, 1024),
}


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    previous = pyengine.get_num_threads()
    pyengine.set_num_threads(request.param)
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(request.param):
            yield request.param
    finally:
        pyengine.set_num_threads(previous)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("engine", ["pyengine", "pyengine-bf16", "numpy", "torch"])
def test_linear(benchmark, threads, case, engine):
    m, k, n = CASES[case]
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, k), dtype=np.float32)
    x = rng.standard_normal((m, k), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    benchmark.extra_info.update(gflop=2e-9 * m * k * n, threads=threads)
    if engine.startswith("pyengine"):  # "pyengine-bf16": the weight stored as bfloat16
        lin = (Bf16Linear if engine == "pyengine-bf16" else Linear)(w)
        benchmark(lin, x, out=out)
    elif engine == "numpy":
        benchmark(np.matmul, x, w.T, out=out)
    else:
        torch = pytest.importorskip("torch")
        torch.set_num_threads(threads)
        tw, tx, to = torch.from_numpy(w).t(), torch.from_numpy(x), torch.from_numpy(out)
        benchmark(torch.matmul, tx, tw, out=to)


def test_rms_norm_rows(benchmark, threads):
    x = np.random.default_rng(0).standard_normal((512, 576), dtype=np.float32)
    benchmark(rms_norm, x, np.ones(576, np.float32), 1e-5, out=x)


def test_decode_attention_2048_keys(benchmark, threads):
    rng = np.random.default_rng(0)
    kc = rng.standard_normal((1, 3, 2048, 64), dtype=np.float32)
    vc = rng.standard_normal((1, 3, 2048, 64), dtype=np.float32)
    q = rng.standard_normal((1, 1, 9, 64), dtype=np.float32)
    out = np.empty_like(q)
    benchmark(attention, q, kc, vc, start_pos=2047, out=out)
