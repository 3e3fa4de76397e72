"""The serving engine on a small random-weight Llama: continuous batching (sequences joining
and leaving at any step), chunked prefill, the paged cache and its prefix cache, deterministic
mode, cancellation, and the limits (queue, cache, context)."""

from __future__ import annotations

import numpy as np
import pytest

import pyengine
from pyengine.serve.engine import Engine, QueueFullError, RequestTooLargeError, SamplingParams


@pytest.fixture(scope="module")
def model(tiny_llama_folder):
    return pyengine.load(tiny_llama_folder)


def prompts(model, n, seed=0, lo=1, hi=40):
    rng = np.random.default_rng(seed)
    return [
        rng.integers(2, model.vocab_size, rng.integers(lo, hi)).astype(np.int32) for _ in range(n)
    ]


def run_alone(model, prompt, max_tokens, block_size=16, **engine_kw):
    engine = Engine(model, n_blocks=64, block_size=block_size, **engine_kw)
    req = engine.submit(prompt, SamplingParams(max_tokens=max_tokens, ignore_eos=True))
    engine.run_until_idle()
    return req.output


def test_greedy_matches_the_dense_forward(model):
    """Each greedy token equals the argmax of a full forward over prompt + tokens so far."""
    (prompt,) = prompts(model, 1, seed=1, lo=20, hi=21)
    out = run_alone(model, prompt, 12)
    seq = list(prompt)
    for t in out:
        logits = model.forward(np.array([seq]))[0, -1]
        assert t == int(np.argmax(logits))
        seq.append(t)


def test_sequences_join_and_leave_at_any_step(model):
    """Deterministic mode: every request's tokens are bit-identical to its run alone, whatever
    joins or leaves around it (staggered submissions, different lengths, chunked prompts)."""
    kw = dict(deterministic=True, max_batch=4, max_step_tokens=32)
    ps = prompts(model, 7, seed=2, lo=1, hi=45)
    lengths = [3, 9, 1, 14, 6, 11, 2]
    alone = [run_alone(model, p, n, **kw) for p, n in zip(ps, lengths)]
    engine = Engine(model, n_blocks=64, block_size=16, **kw)
    reqs = []
    for i, (p, n) in enumerate(zip(ps, lengths)):
        reqs.append(engine.submit(p, SamplingParams(max_tokens=n, ignore_eos=True)))
        for _ in range(i % 3):  # some steps before the next one joins
            engine.step()
    engine.run_until_idle()
    for r, want in zip(reqs, alone):
        assert r.output == want and r.finish_reason == "length"
    assert engine.blocks.used == 0  # every block back in the pool


def test_chunked_prefill_gives_the_same_tokens(model):
    (p,) = prompts(model, 1, seed=3, lo=50, hi=51)
    small = run_alone(model, p, 8, max_batch=2, max_step_tokens=8)  # 50 tokens in 7 chunks
    big = run_alone(model, p, 8)
    assert small == big


def test_default_mode_batches_agree_with_alone_on_greedy_tokens(model):
    ps = prompts(model, 5, seed=4)
    alone = [run_alone(model, p, 10) for p in ps]
    engine = Engine(model, n_blocks=64, block_size=16)
    reqs = [engine.submit(p, SamplingParams(max_tokens=10, ignore_eos=True)) for p in ps]
    engine.run_until_idle()
    assert [r.output for r in reqs] == alone


def test_prefix_cache_reuses_blocks_and_keeps_the_result(model):
    rng = np.random.default_rng(5)
    shared = rng.integers(2, model.vocab_size, 40).astype(np.int32)
    a = np.concatenate([shared, [5, 6, 7]]).astype(np.int32)
    b = np.concatenate([shared, [9, 8]]).astype(np.int32)
    # deterministic: prompts cut every (24 - 4) // 8 * 8 = 16 tokens, prefixes reused in those
    kw = dict(deterministic=True, max_batch=4, max_step_tokens=24)
    engine = Engine(model, n_blocks=32, block_size=8, **kw)
    assert engine.prefill_chunk == 16
    ra = engine.submit(a, SamplingParams(max_tokens=5, ignore_eos=True))
    engine.run_until_idle()
    rb = engine.submit(b, SamplingParams(max_tokens=5, ignore_eos=True))
    engine.run_until_idle()
    assert ra.cached_tokens == 0
    assert rb.cached_tokens == 32  # whole 16-token chunks of the 40 shared tokens
    assert rb.output == run_alone(model, b, 5, block_size=8, **kw)
    plain = Engine(model, n_blocks=32, block_size=8, prefix_caching=True)
    plain.submit(a, SamplingParams(max_tokens=2))
    plain.run_until_idle()
    rc = plain.submit(b, SamplingParams(max_tokens=2))
    plain.run_until_idle()
    assert rc.cached_tokens == 40  # default mode: every whole block of the shared prefix


def test_a_full_cache_makes_requests_wait_not_fail(model):
    ps = prompts(model, 3, seed=6, lo=10, hi=11)
    engine = Engine(model, n_blocks=2, block_size=16)  # room for one request at a time
    reqs = [engine.submit(p, SamplingParams(max_tokens=20, ignore_eos=True)) for p in ps]
    engine.step()
    assert len(engine.running) == 1 and len(engine.waiting) == 2
    engine.run_until_idle()
    assert all(len(r.output) == 20 for r in reqs)
    assert [r.output for r in reqs] == [run_alone(model, p, 20) for p in ps]


def test_cancel_frees_blocks_at_once(model):
    engine = Engine(model, n_blocks=16, block_size=16)
    events = []
    r1 = engine.submit(prompts(model, 1)[0], SamplingParams(max_tokens=30), events.append)
    r2 = engine.submit(prompts(model, 1, seed=9)[0], SamplingParams(max_tokens=30))
    engine.step()
    engine.step()
    used = engine.blocks.used
    engine.cancel(r1)
    engine.step()
    assert r1.finish_reason == "cancelled" and events[-1].finish_reason == "cancelled"
    assert engine.blocks.used < used and r2.finish_reason is None
    engine.run_until_idle()
    assert engine.blocks.used == 0


def test_limits(model):
    engine = Engine(model, n_blocks=2, block_size=16, max_queue=2)
    with pytest.raises(RequestTooLargeError, match="needs 3 KV blocks; the cache holds 2"):
        engine.submit([1] * 20, SamplingParams(max_tokens=20))
    with pytest.raises(RequestTooLargeError, match="exceeds the model's context length 64"):
        engine.submit([1] * 20, SamplingParams(max_tokens=60))
    engine.submit([1], SamplingParams(max_tokens=1))
    engine.submit([1], SamplingParams(max_tokens=1))
    with pytest.raises(QueueFullError):
        engine.submit([1], SamplingParams(max_tokens=1))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        engine.submit([model.vocab_size], SamplingParams(max_tokens=1))
    with pytest.raises(ValueError, match="temperature"):
        engine.submit([1], SamplingParams(temperature=-1.0))
    with pytest.raises(ValueError, match="max_tokens"):
        engine.submit([1], SamplingParams(max_tokens=0))


def test_background_thread_serves_submissions(model):
    import threading

    engine = Engine(model, n_blocks=32, block_size=16)
    engine.start()
    try:
        done = threading.Event()
        finished = []

        def on_event(e):
            if e.finish_reason is not None:
                finished.append(e)
                if len(finished) == 3:
                    done.set()

        ps = prompts(model, 3, seed=8)
        reqs = [
            engine.submit(p, SamplingParams(max_tokens=6, ignore_eos=True), on_event) for p in ps
        ]
        assert done.wait(60)
        assert [r.output for r in reqs] == [run_alone(model, p, 6) for p in ps]
    finally:
        engine.shutdown()


def test_logprobs_are_the_model_distribution(model):
    engine = Engine(model, n_blocks=16, block_size=16)
    events = []
    p = prompts(model, 1, seed=10)[0]
    engine.submit(p, SamplingParams(max_tokens=1, logprobs=3), events.append)
    engine.run_until_idle()
    e = events[0]
    x = model.forward(np.array([p]))[0, -1].astype(np.float64)
    lp = x - (x.max() + np.log(np.exp(x - x.max()).sum()))
    assert e.logprob == pytest.approx(lp[e.token], abs=1e-4)
    assert [t for t, _ in e.top_logprobs] == list(np.argsort(-lp)[:3])


def _recording(req):
    """Keeps a copy of every logits row the request's sampler sees."""
    seen, sample = [], req.sampler.sample_row

    def record(logits, ids):
        seen.append(np.array(logits))
        return sample(logits, ids)

    req.sampler.sample_row = record
    return seen


def test_deterministic_logits_are_bit_identical_alone_and_batched(model):
    kw = dict(deterministic=True, max_batch=8, max_step_tokens=40)
    ps = prompts(model, 6, seed=11, lo=2, hi=30)

    def logits_of(batch):
        engine = Engine(model, n_blocks=64, block_size=16, **kw)
        rows = []
        for i, p in enumerate(batch):
            rows.append(_recording(engine.submit(p, SamplingParams(max_tokens=6, ignore_eos=True))))
            if i % 2:
                engine.step()
        engine.run_until_idle()
        return rows

    together = logits_of(ps)
    for p, got in zip(ps, together):
        (alone,) = logits_of([p])
        assert len(alone) == len(got) == 6
        for a, b in zip(alone, got):
            np.testing.assert_array_equal(a, b)
