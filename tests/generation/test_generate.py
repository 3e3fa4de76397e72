"""generate(): prompt forms, sampling, stop strings, streaming, and errors; on a small
random-weight Llama with a real byte-level BPE tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

import pyengine

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model(tiny_llama_folder):
    return pyengine.load(tiny_llama_folder)


def test_text_batch_and_ids(model):
    one = model.generate("Once upon", max_new_tokens=8)
    assert isinstance(one, str)
    batch = model.generate(["Once upon", "a b c a b c"], max_new_tokens=8)
    assert batch[0] == one and len(batch) == 2
    ids = model.tokenizer.encode("Once upon").ids
    out = model.generate(ids, max_new_tokens=8)
    assert out.dtype == np.int32 and out.ndim == 1
    assert model.tokenizer.decode(out.tolist(), skip_special_tokens=True) == one


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(model):
    assert model.generate("a b", max_new_tokens=10) == model.generate("a b", max_new_tokens=10)
    kw = dict(max_new_tokens=12, temperature=1.5, top_k=50, top_p=0.95, seed=7)
    ids = model.tokenizer.encode("a b").ids
    first = model.generate(ids, **kw)
    assert np.array_equal(first, model.generate(ids, **kw))
    others = [model.generate(ids, **{**kw, "seed": s}) for s in range(4)]
    assert any(not np.array_equal(first, o) for o in others)


def test_top_k_one_is_greedy(model):
    ids = model.tokenizer.encode("Once").ids
    greedy = model.generate(ids, max_new_tokens=10)
    sampled = model.generate(ids, max_new_tokens=10, temperature=0.8, top_k=1, seed=3)
    np.testing.assert_array_equal(greedy, sampled)


def test_stream_joins_to_the_whole_text(model):
    pieces = list(model.generate("Ünïcödé", max_new_tokens=16, stream=True))
    assert "".join(pieces) == model.generate("Ünïcödé", max_new_tokens=16)


def _gpt2_byte_map() -> dict[int, str]:
    """GPT-2's byte -> printable character map, which byte-level BPE vocabularies use."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = dict(zip(printable, printable)), 0
    for b in range(256):
        if b not in chars:
            chars[b], extra = 256 + extra, extra + 1
    return {b: chr(c) for b, c in chars.items()}


def test_stream_never_splits_a_multibyte_character(model):
    """Tokens carrying single UTF-8 bytes of 'é🙂' stream as whole characters only."""
    from pyengine.generation.detokenize import TextStream

    byte_map = _gpt2_byte_map()
    ids = [model.tokenizer.token_to_id(byte_map[b]) for b in "é🙂".encode()]
    stream = TextStream(model.tokenizer, [])
    pieces = [p for p in (stream.feed(t) for t in ids) if p]
    assert stream.flush() == ""
    assert "".join(pieces) == "é🙂"
    assert len(pieces) == 2 and all("\ufffd" not in p for p in pieces)


def test_stop_strings_cut_the_text(model):
    full = model.generate("a b c", max_new_tokens=20)
    if len(full) < 4:
        pytest.skip("continuation too short to cut")
    stop = full[2:4]
    cut = model.generate("a b c", max_new_tokens=20, stop=stop)
    assert cut == full[: full.find(stop)]
    assert "".join(model.generate("a b c", max_new_tokens=20, stop=[stop], stream=True)) == cut


def test_chat_template(model):
    text = model.generate("hello", chat=True, max_new_tokens=5)
    rendered = model.generate(messages=[{"role": "user", "content": "hello"}], max_new_tokens=5)
    assert text == rendered
    ids = model.tokenizer.encode("<user>hello<assistant>", add_special_tokens=False).ids
    assert (
        model.tokenizer.decode(
            model.generate(ids, max_new_tokens=5).tolist(), skip_special_tokens=True
        )
        == text
    )


def test_repetition_penalty_in_generation_matches_transformers(model):
    ids = model.tokenizer.encode("a b c a b").ids
    ours = model.generate(ids, max_new_tokens=12, repetition_penalty=1.3)
    hf = transformers.LlamaForCausalLM.from_pretrained(model.extras["source"]).eval()
    with torch.no_grad():
        out = hf.generate(
            torch.tensor([ids]),
            max_new_tokens=12,
            do_sample=False,
            repetition_penalty=1.3,
            pad_token_id=0,
        )[0, len(ids) :].numpy()
    np.testing.assert_array_equal(ours, out[: len(ours)])


@pytest.mark.parametrize(
    ("prompt", "kwargs", "error", "match"),
    [
        ("", {}, ValueError, "prompt is empty"),
        ([], {}, ValueError, "prompt"),
        (["ok", ""], {}, ValueError, r"prompt\[1\] is empty"),
        ([5, 9999], {}, ValueError, "token id 9999, outside the vocabulary"),
        ([-1, 2], {}, ValueError, "token id -1"),
        ("x" * 10, {"max_new_tokens": 60}, ValueError, "exceeds the model's context length 64"),
        ("hi", {"max_new_tokens": 0}, ValueError, "max_new_tokens must be a positive integer"),
        ("hi", {"temperature": -1}, ValueError, "temperature must be >= 0"),
        ("hi", {"top_p": 1.5}, ValueError, "top_p must be in"),
        ("hi", {"top_k": 0}, ValueError, "top_k must be a positive integer"),
        (["a", "b"], {"stream": True, "max_new_tokens": 4}, ValueError, "stream=True takes a"),
        (3.5, {}, ValueError, "token id|integer"),
    ],
)
def test_bad_input(model, prompt, kwargs, error, match):
    with pytest.raises((error, TypeError), match=match):
        model.generate(prompt, **kwargs)


def test_forward_checks(model):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.forward(np.array([[1, 2, 10_000]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model.forward(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="has a hole"):
        model.forward(np.array([[1, 2, 3]]), np.array([[1, 0, 1]]))
    with pytest.raises(ValueError, match="context length is 64"):
        model.forward(np.ones((1, 65), np.int64))
