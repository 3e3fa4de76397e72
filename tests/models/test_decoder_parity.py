"""Decoders against Hugging Face transformers on the same random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyengine

# Logits agree within this fraction of the largest |logit| (fp32 throughout, different
# summation orders): stated once, for every variant.
LOGIT_RTOL = 1e-4


def hf_logits(model, ids, mask=None):
    ids_t = torch.from_numpy(np.asarray(ids, np.int64))
    kwargs = {}
    if mask is not None:
        m = torch.from_numpy(np.asarray(mask, np.int64))
        kwargs = {"attention_mask": m, "position_ids": (m.cumsum(-1) - 1).clamp(min=0)}
    with torch.no_grad():
        return model(ids_t, **kwargs).logits.numpy()


def assert_logits_close(got, want, what=""):
    err = np.abs(got - want).max()
    assert err <= LOGIT_RTOL * np.abs(want).max(), f"{what}: max |diff| {err:.3g}"


@pytest.fixture(scope="module")
def loaded(hf_checkpoint):
    name, folder, hf = hf_checkpoint
    return name, pyengine.load(folder), hf


def test_logits_match(loaded, threads):
    name, model, hf = loaded
    ids = np.random.default_rng(0).integers(0, hf.config.vocab_size, (2, 37))
    assert_logits_close(model.forward(ids), hf_logits(hf, ids), name)


def test_32_greedy_tokens_match(loaded):
    name, model, hf = loaded
    prompt = np.random.default_rng(1).integers(1, hf.config.vocab_size, 11)
    with torch.no_grad():
        want = hf.generate(
            torch.from_numpy(prompt[None]).long(),
            max_new_tokens=32,
            min_new_tokens=32,
            do_sample=False,
            pad_token_id=0,
        )[0, 11:].numpy()
    got = model.generate(prompt, max_new_tokens=32)
    eos = set(model.config.eos_token_ids)
    n = next((i + 1 for i, t in enumerate(got) if int(t) in eos), len(got))
    np.testing.assert_array_equal(got, want[:n], err_msg=name)


def decode_steps_and_full_forward(model, vocab: int, prompt: int = 12, total: int = 20):
    """(position, logits of the decode step there, the full forward's row there) for the
    positions after a `prompt`-token prefill, over the same random ids."""
    ids = np.random.default_rng(2).integers(0, vocab, total).astype(np.int32)
    pads = np.zeros(1, np.int32)
    model.start(ids[None, :prompt], pads, total, "last")
    full = model.forward(ids[None])[0]
    for pos in range(prompt, total):
        yield pos, model.step(ids[pos : pos + 1], pads, pos)[0], full[pos]


def test_kv_cache_decoding_equals_full_recompute(loaded):
    """Logits of each decode step equal the last row of a full forward over the same ids."""
    name, model, hf = loaded
    for pos, step, full in decode_steps_and_full_forward(model, hf.config.vocab_size):
        assert_logits_close(step, full, f"{name} position {pos}")


def test_padded_batch_equals_one_by_one(loaded):
    name, model, hf = loaded
    rng = np.random.default_rng(3)
    prompts = [rng.integers(1, hf.config.vocab_size, n) for n in (5, 13, 9)]
    batch = model.generate(prompts, max_new_tokens=10)
    for p, got in zip(prompts, batch):
        np.testing.assert_array_equal(got, model.generate(p, max_new_tokens=10), err_msg=name)
    # and the left-padded forward equals transformers given the same mask and positions
    longest = max(len(p) for p in prompts)
    ids = np.zeros((3, longest), np.int64)
    mask = np.zeros((3, longest), np.int64)
    for b, p in enumerate(prompts):
        ids[b, longest - len(p) :], mask[b, longest - len(p) :] = p, 1
    got, want = model.forward(ids, mask), hf_logits(hf, ids, mask)
    for b, p in enumerate(prompts):
        assert_logits_close(got[b, -len(p) :], want[b, -len(p) :], f"{name} row {b}")


def test_debug_mode_checks_every_op(hf_checkpoint):
    name, folder, hf = hf_checkpoint
    model = pyengine.load(folder, debug=True)
    ids = np.arange(1, 8)[None]
    assert_logits_close(model.forward(ids), hf_logits(hf, ids), name)
