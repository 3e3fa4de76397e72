"""One model object used from several Python threads: every call returns what it returns
alone (calls on one model take turns), and re-entering from the thread that holds the model
raises instead of deadlocking or corrupting the running call."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import pyengine
from pyengine.runtime.model_lock import ModelBusyError

PROMPTS = ["Once upon a time", "a b c a b c", "Ünïcödé and emoji", "there was a small"]


def _run_in_threads(fn, args, repeats=3):
    """fn(arg) from one thread per arg, all started together, `repeats` times each."""
    results = {i: [] for i in range(len(args))}
    errors = []
    barrier = threading.Barrier(len(args))

    def work(i):
        try:
            barrier.wait()
            for _ in range(repeats):
                results[i].append(fn(args[i]))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


@pytest.fixture(scope="module")
def model(tiny_llama_folder):
    return pyengine.load(tiny_llama_folder)


def test_generate_from_four_threads_equals_alone(model):
    alone = [model.generate(p, max_new_tokens=24) for p in PROMPTS]
    got = _run_in_threads(lambda p: model.generate(p, max_new_tokens=24), PROMPTS)
    for i, outs in got.items():
        assert outs == [alone[i]] * len(outs)


def test_streams_and_batches_from_threads_equal_alone(model):
    alone = model.generate(PROMPTS, max_new_tokens=16)
    streamed = {p: "".join(model.generate(p, max_new_tokens=16, stream=True)) for p in PROMPTS}

    def call(i):
        if i % 2:
            return "".join(model.generate(PROMPTS[i], max_new_tokens=16, stream=True))
        return model.generate(PROMPTS, max_new_tokens=16)

    got = _run_in_threads(call, list(range(4)))
    for i, outs in got.items():
        want = streamed[PROMPTS[i]] if i % 2 else alone
        assert all(o == want for o in outs)


def test_forward_from_threads_equals_alone(model):
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, model.vocab_size, (2, n)) for n in (3, 7, 17, 31)]
    alone = [model.forward(x) for x in inputs]
    got = _run_in_threads(model.forward, inputs)
    for i, outs in got.items():
        for o in outs:
            np.testing.assert_array_equal(o, alone[i])


def test_reentry_from_the_holding_thread_raises(model):
    stream = model.generate("Once upon", max_new_tokens=8, stream=True)
    next(stream)  # the stream now holds the model
    with pytest.raises(ModelBusyError, match="already running a call in this thread"):
        model.generate("a b", max_new_tokens=2)
    with pytest.raises(ModelBusyError):
        model.forward([[1, 2, 3]])
    stream.close()  # closing releases it
    assert isinstance(model.generate("a b", max_new_tokens=2), str)


def test_another_thread_waits_for_an_open_stream(model):
    alone = model.generate("a b c", max_new_tokens=6)
    stream = model.generate("Once upon", max_new_tokens=8, stream=True)
    next(stream)
    result = []
    t = threading.Thread(target=lambda: result.append(model.generate("a b c", max_new_tokens=6)))
    t.start()
    t.join(timeout=0.5)
    assert t.is_alive() and not result  # waiting, not running over the stream's buffers
    rest = list(stream)  # the stream finishes undisturbed, then the other call runs
    t.join(timeout=60)
    assert result == [alone] and isinstance(rest, list)


def test_encoder_from_threads_equals_alone(minilm_path):
    enc = pyengine.load(minilm_path)
    texts = [["first text", "a second, longer text"], ["x"], ["ünïcödé"] * 5, ["b c d " * 40]]
    alone = [enc.encode(t) for t in texts]
    got = _run_in_threads(enc.encode, texts)
    for i, outs in got.items():
        for o in outs:
            np.testing.assert_array_equal(o, alone[i])
