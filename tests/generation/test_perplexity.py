"""Perplexity: the scoring (against plain math and torch), the windows (each token scored once),
whole runs on a random-weight Llama (against transformers' logits), errors, the CLI, and
SmolLM2 against llama.cpp on the same token ids."""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

import pyengine
from pyengine.cli import main
from pyengine.generation import PerplexityResult, perplexity
from pyengine.generation.perplexity import (
    default_text_path,
    perplexity_of_logits,
    score_windows,
    token_nll,
    token_windows,
)

TEXT = "Once upon a time there was a small model. " * 6 + "Ünïcödé and emoji 🙂 text, a b c. " * 3


# ---- scoring ---------------------------------------------------------------------------------


def test_token_nll_matches_plain_math():
    logits = np.array(
        [[1.0, 2.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0], [-2.0, 1.0, 1.0, 4.0], [9.0, 9.0, 9.0, 9.0]],
        np.float32,
    )  # [4 tokens, vocab 4]; the last row predicts past the text and is not used
    ids = [3, 1, 2, 0]

    def nll(row, target):  # -log softmax(row)[target], in the plainest form
        return math.log(math.fsum(math.exp(float(x)) for x in row)) - float(row[target])

    want = [nll(logits[t - 1], ids[t]) for t in range(1, 4)]
    got = token_nll(logits, ids)
    assert got.dtype == np.float64 and got.shape == (3,)
    assert got == pytest.approx(want, rel=1e-14, abs=0)
    assert token_nll(logits, ids, score_from=2) == pytest.approx(want[1:], rel=1e-14, abs=0)
    ppl = perplexity_of_logits(logits, ids)
    assert ppl == pytest.approx(math.exp(math.fsum(want) / 3), rel=1e-14)


def test_token_nll_matches_torch_cross_entropy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    n, vocab = 600, 37  # over two row chunks of the float64 scoring
    logits = (rng.standard_normal((n, vocab)) * 5).astype(np.float32)
    ids = rng.integers(0, vocab, n)
    want = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits[:-1].astype(np.float64)),
        torch.from_numpy(ids[1:]),
        reduction="none",
    ).numpy()
    np.testing.assert_allclose(token_nll(logits, ids), want, rtol=1e-12, atol=1e-12)


def test_token_nll_is_stable_for_large_logits():
    logits = np.array([[1e4, 1e4 + 1.0, 1e4 - 3.0], [0.0, 0.0, 0.0]], np.float32)
    shifted = logits - np.float32(1e4)
    got = token_nll(logits, [0, 1])
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, token_nll(shifted, [0, 1]), rtol=1e-12)


def test_token_nll_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"logits must be \[len\(ids\)=3, vocab\]"):
        token_nll(np.zeros((2, 5), np.float32), [0, 1, 2])
    with pytest.raises(ValueError, match="outside the logits' vocabulary"):
        token_nll(np.zeros((2, 5), np.float32), [0, 5])
    with pytest.raises(ValueError, match="score_from"):
        token_nll(np.zeros((2, 5), np.float32), [0, 1], score_from=0)


# ---- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, window, stride",
    [
        (2, 2, None),
        (3, 2, None),  # a lone last token is no window
        (513, 512, None),
        (514, 512, None),
        (1000, 512, None),
        (100, 512, None),
        (1000, 512, 256),
        (10, 4, 1),
        (10, 4, 3),
        (17, 5, 2),
    ],
)
def test_windows_score_each_token_once(n, window, stride):
    ids = np.arange(n) * 7 % 101
    windows = token_windows(ids, window, stride)
    scored = []
    for k, w in enumerate(windows):
        assert w.begin == k * (stride or window)
        assert 2 <= len(w.ids) <= window and 1 <= w.score_from < len(w.ids)
        assert np.array_equal(w.ids, ids[w.begin : w.begin + len(w.ids)])
        scored += range(w.begin + w.score_from, w.begin + len(w.ids))
    if stride is None:  # side by side: all but each window's first token (context only)
        assert scored == [t for t in range(n) if t % window != 0]
    else:  # overlapping: every token but the very first
        assert scored == list(range(1, n))


def test_side_by_side_windows_count():
    windows = token_windows(np.zeros(3768, np.int64), 512)
    assert len(windows) == 8 and [w.begin for w in windows] == list(range(0, 3768, 512))
    assert sum(len(w.ids) - w.score_from for w in windows) == 3768 - 8


@pytest.mark.parametrize(
    "ids, window, stride, message",
    [
        (np.arange(5), 1, None, "window must be an integer >= 2"),
        (np.arange(5), 4, 0, r"stride must be an integer in \[1, window=4\]"),
        (np.arange(5), 4, 5, r"stride must be an integer in \[1, window=4\]"),
        (np.zeros((2, 3), np.int64), 4, None, "1-D integer"),
        (np.zeros(3, np.float32), 4, None, "1-D integer"),
    ],
)
def test_windows_reject_bad_arguments(ids, window, stride, message):
    with pytest.raises(ValueError, match=message):
        token_windows(ids, window, stride)


# ---- whole runs on stand-in models -----------------------------------------------------------


class UniformModel:
    """A decoder whose logits are all 0: every token has probability 1 / vocab."""

    def __init__(self, vocab=50, context_length=64, tokenizer=True, sliding_window=None):
        self.vocab = vocab
        self.context_length = context_length
        self.config = SimpleNamespace(is_encoder=False, sliding_window=sliding_window)
        self.tokenizer = SimpleNamespace(encode=self._encode) if tokenizer else None
        self.calls = []

    def _encode(self, text):
        return SimpleNamespace(ids=[ord(c) % self.vocab for c in text])

    def forward(self, input_ids):
        ids = np.asarray(input_ids)
        self.calls.append(ids.shape)
        return np.zeros((*ids.shape, self.vocab), np.float32)


def test_uniform_logits_give_the_vocabulary_size():
    model = UniformModel(vocab=50)
    r = perplexity(model, "x" * 100, window=16)
    assert isinstance(r, PerplexityResult)
    assert r.ppl == pytest.approx(50, rel=1e-12) and r.nll == pytest.approx(math.log(50))
    assert (r.windows, r.window, r.stride) == (7, 16, 16)  # 6 of 16 and one of 4
    assert r.tokens_scored == 100 - 7 and r.seconds >= 0
    assert model.calls == [(1, 16)] * 6 + [(1, 4)]
    r = perplexity(model, "x" * 100, window=16, stride=4)
    assert r.ppl == pytest.approx(50, rel=1e-12) and r.tokens_scored == 99


@pytest.mark.parametrize(
    "context, sliding, want", [(8192, None, 512), (64, None, 64), (8192, 100, 512)]
)
def test_default_window(context, sliding, want):
    model = UniformModel(context_length=context, sliding_window=sliding)
    assert perplexity(model, "y" * 40).window == want


def test_errors():
    model = UniformModel(context_length=64)
    with pytest.raises(ValueError, match="text is empty"):
        perplexity(model, "")
    with pytest.raises(ValueError, match=r"text has 1 token\(s\); perplexity needs at least 2"):
        perplexity(model, "a")
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        perplexity(model, "abc", window=1)
    with pytest.raises(ValueError, match="window 65 exceeds the model's context length 64"):
        perplexity(model, "abc", window=65)
    with pytest.raises(TypeError, match="text must be a str"):
        perplexity(model, b"abc")
    with pytest.raises(TypeError, match="has no tokenizer"):
        perplexity(UniformModel(tokenizer=False), "abc")
    encoder = SimpleNamespace(config=SimpleNamespace(is_encoder=True), tokenizer=object())
    with pytest.raises(TypeError, match="needs a causal LM"):
        perplexity(encoder, "abc")


def test_default_text_is_shipped_with_python():
    with open(default_text_path(), encoding="utf-8") as f:
        text = f.read()
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in text and len(text) > 5000


# ---- a random-weight Llama against transformers ----------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_llama_folder):
    return pyengine.load(tiny_llama_folder)


@pytest.mark.parametrize("stride", [None, 5])
def test_matches_transformers_logits(tiny, tiny_llama_folder, stride):
    """The whole run against transformers' float32 logits scored by torch, window by window."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf = transformers.LlamaForCausalLM.from_pretrained(tiny_llama_folder).eval()
    ids = tiny.tokenizer.encode(TEXT).ids
    assert len(ids) > 100
    r = perplexity(tiny, TEXT, window=16, stride=stride)
    total, count = 0.0, 0
    with torch.no_grad():
        for w in token_windows(ids, 16, stride):
            logits = hf(torch.tensor(w.ids[None, :], dtype=torch.long)).logits[0].double()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            targets = torch.tensor(w.ids[1:], dtype=torch.long)
            nll = -logp[torch.arange(len(targets)), targets][w.score_from - 1 :]
            total += float(nll.sum())
            count += len(nll)
    assert r.tokens_scored == count == (len(ids) - 1 if stride else len(ids) - r.windows)
    # float32 logits of two engines: relative differences ~1e-6, on an nll of ~log(vocab)
    assert r.nll == pytest.approx(total / count, rel=1e-5)
    assert r.ppl == pytest.approx(math.exp(r.nll), rel=1e-15)


def test_score_windows_with_forward_equals_perplexity(tiny):
    ids = np.asarray(tiny.tokenizer.encode(TEXT).ids, np.int32)
    r = perplexity(tiny, TEXT, window=32)
    again = score_windows(lambda w: tiny.forward(w[None, :])[0], ids, 32)
    assert (again.ppl, again.tokens_scored, again.windows) == (r.ppl, r.tokens_scored, r.windows)


# ---- the command line ------------------------------------------------------------------------


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_cli_line_and_json(tiny, tiny_llama_folder, text_file, capsys, monkeypatch):
    loads = []
    real_load = pyengine.load

    def load(*args, **kwargs):
        loads.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pyengine, "load", load)
    want = perplexity(tiny, TEXT, window=16)
    argv = ["perplexity", "--model", str(tiny_llama_folder), "--text", str(text_file)]
    assert main([*argv, "--window", "16", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    m = re.fullmatch(r"perplexity (\S+) over (\d+) tokens \((\d+) windows of 16\) in \S+ s\n", out)
    assert m, out
    assert float(m[1]) == pytest.approx(want.ppl, abs=0.006)
    assert (int(m[2]), int(m[3])) == (want.tokens_scored, want.windows)
    assert loads[-1] == {"threads": 1}  # no --dtype: load()'s own default applies

    assert main([*argv, "--window", "16", "--dtype", "float32", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert loads[-1] == {"threads": None, "dtype": "float32"}
    assert got["ppl"] == pytest.approx(want.ppl, rel=1e-6)
    assert got["nll"] == pytest.approx(want.nll, rel=1e-6)
    assert {k: got[k] for k in ("tokens_scored", "windows", "window", "stride")} == {
        "tokens_scored": want.tokens_scored,
        "windows": want.windows,
        "window": 16,
        "stride": 16,
    }
    assert (got["dtype"], got["text"], got["model"]) == (
        "float32",
        str(text_file),
        str(tiny_llama_folder),
    )

    assert main([*argv, "--window", "16", "--stride", "8"]) == 0
    assert "windows of 16, stride 8)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--text", "/nonexistent/text.txt"], "No such file"),
        (["--window", "65"], "exceeds the model's context length 64"),
        (["--dtype", "float7"], "float7"),  # load() validates dtypes, not the CLI
    ],
)
def test_cli_errors_are_one_line(tiny_llama_folder, text_file, capsys, extra, message):
    argv = ["perplexity", "--model", str(tiny_llama_folder), "--text", str(text_file), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyengine: error:") and message in err and err.count("\n") == 1


def test_cli_bad_model(tmp_path, text_file, capsys):
    assert main(["perplexity", "--model", str(tmp_path / "nope"), "--text", str(text_file)]) == 2
    assert capsys.readouterr().err.startswith("pyengine: error:")


# ---- SmolLM2 against llama.cpp on the same tokens --------------------------------------------


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    pytest.importorskip("llama_cpp")
    return pyengine.load(smollm2_path, dtype="float32")


def test_smollm2_matches_llama_cpp(smollm2, smollm2_path):
    """pyengine (the GGUF's Q4_1 weights expanded to float32) within 1% of llama.cpp (Q4_1
    weights, activations rounded to 8 bits in its dot products) on the same token windows.
    On the whole default text at window 512 they differed by 0.5% (12.49 vs 12.55)."""
    import llama_cpp

    with open(default_text_path(), encoding="utf-8") as f:
        text = f.read()[:1600]  # a few hundred tokens
    ids = np.asarray(smollm2.tokenizer.encode(text).ids, np.int32)
    window = 128
    ours = perplexity(smollm2, text, window=window)

    llm = llama_cpp.Llama(
        model_path=str(smollm2_path),
        n_ctx=window,
        n_batch=window,
        logits_all=True,
        n_threads=2,
        verbose=False,
    )

    def llama_logits(w):
        llm.reset()
        llm.eval(w.tolist())  # exactly our ids: llama.cpp adds no BOS here
        return llm.scores[: len(w)]

    theirs = score_windows(llama_logits, ids, window)
    assert ours.tokens_scored == theirs.tokens_scored == len(ids) - ours.windows > 300
    assert ours.ppl == pytest.approx(theirs.ppl, rel=0.01), (ours.ppl, theirs.ppl)
