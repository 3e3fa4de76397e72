"""The thread pool: sizing, concurrency from several Python threads, GIL release."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from helpers import small_int_matrix

import pyengine
from pyengine import _C
from pyengine.ops import Linear, matmul


def test_default_is_the_affinity_mask():
    assert _C.available_cpus() == len(os.sched_getaffinity(0))


def test_set_and_get(threads):
    assert pyengine.get_num_threads() == threads
    assert pyengine.cpu_info()["num_threads"] == threads


@pytest.mark.parametrize("bad", [0, -3])
def test_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="number of threads must be >= 1"):
        pyengine.set_num_threads(bad)


def test_more_threads_than_cpus_still_correct():
    rng = np.random.default_rng(0)
    w, x = small_int_matrix(rng, (300, 200)), small_int_matrix(rng, (40, 200))
    previous = pyengine.get_num_threads()
    try:
        pyengine.set_num_threads(7)
        got = Linear(w)(x)
    finally:
        pyengine.set_num_threads(previous)
    np.testing.assert_array_equal(got, (x.astype(np.float64) @ w.T).astype(np.float32))


def test_two_python_threads_share_the_pool(threads):
    """Kernels called at once from two Python threads give the single-caller results."""
    rng = np.random.default_rng(1)
    layers = [Linear(rng.standard_normal((n, 300), dtype=np.float32)) for n in (257, 64)]
    inputs = [rng.standard_normal((m, 300), dtype=np.float32) for m in (1, 3, 33, 130)]
    expected = {(i, j): layers[i](x) for i in range(2) for j, x in enumerate(inputs)}
    errors = []

    def worker(i):
        for _ in range(30):
            for j, x in enumerate(inputs):
                if not np.array_equal(layers[i](x), expected[i, j]):
                    errors.append((i, j))

    pool = [threading.Thread(target=worker, args=(i,)) for i in (0, 1, 0, 1)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []


def test_kernels_release_the_gil():
    """A Python thread keeps running while another thread is inside a long kernel."""
    a = np.ones((700, 700), np.float32)
    ticks = 0
    done = threading.Event()

    def run_kernels():
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            matmul(a, a)
        done.set()

    t = threading.Thread(target=run_kernels)
    t.start()
    while not done.is_set():
        ticks += 1
    t.join()
    # With the GIL held during each ~10 ms matmul this loop would barely advance; released, it
    # spins hundreds of thousands of times in 0.3 s.
    assert ticks > 10_000


def test_dispatch_overhead_is_measured(threads):
    """The probe runs and reports a plausible figure (speed itself is for bench/, not here)."""
    ns = _C.measure_dispatch_overhead_ns(200)
    assert -2_000 < ns < 10_000_000
