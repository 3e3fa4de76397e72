"""TextStream: incremental decoding gives the same text as decoding the whole sequence, whole
characters only, and stop strings cut where they begin (also across token boundaries)."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.generation.detokenize import TextStream

TEXTS = [
    "Once upon a time, there was a model.",
    "Ünïcödé: café, naïve, 日本語のテキスト, emoji 🙂🚀 and   spaces\n\nnew lines",
    "def f(x):\n    return x ** 2  # code",
]


@pytest.fixture(scope="module", params=["tiny", "smollm2"])
def tokenizer(request, tiny_llama_folder, require_model):
    import pyengine

    if request.param == "tiny":
        return pyengine.load(tiny_llama_folder).tokenizer
    return pyengine.load(require_model("smollm2-135m-instruct")).tokenizer


def _stream(tokenizer, ids, stops=()):
    s = TextStream(tokenizer, list(stops))
    pieces = [s.feed(t) for t in ids]
    pieces.append(s.flush())
    return s, pieces


@pytest.mark.parametrize("text", TEXTS)
def test_pieces_join_to_the_whole_decode(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    s, pieces = _stream(tokenizer, ids)
    whole = tokenizer.decode(ids, skip_special_tokens=True)
    assert "".join(pieces) == whole == s.text
    assert all("\ufffd" not in p for p in pieces)


def test_random_ids_join_to_the_whole_decode(tokenizer):
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = rng.integers(0, tokenizer.get_vocab_size(), 40).tolist()
        _, pieces = _stream(tokenizer, ids)
        assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("text", TEXTS)
def test_stop_strings_cut_where_they_begin(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    whole = tokenizer.decode(ids, skip_special_tokens=True)
    for stop in (whole[5:9], whole[-3:], "never there"):
        s, pieces = _stream(tokenizer, ids, [stop, "also never"])
        cut = whole.find(stop)
        want = whole if cut < 0 else whole[:cut]
        assert "".join(pieces) == want == s.text
        assert s.stopped == (cut >= 0)
