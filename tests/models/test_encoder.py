"""Encoders: all-MiniLM-L6-v2 against sentence-transformers, random BERT/RoBERTa against
transformers, batching and threading invariance, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import pyengine

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# Hidden states of the random encoders agree within this fraction of max |hidden|.
HIDDEN_RTOL = 1e-4

SENTENCES = [
    "A man is eating food.",
    "",
    "Hi",
    "Café crème brûlée à la mode, naïve façade, jalapeño, Zürich.",
    "Emoji test 🙂🚀🔥 with flags 🇫🇷 and hearts ❤️",
    "中文句子用于测试编码器。日本語の文も試します。한국어 문장도 있습니다.",
    "def forward(self, x):\n    return torch.relu(self.linear(x)) @ W.T  # code",
    "   leading and trailing whitespace   \t\n",
    " ".join(["This long sentence repeats to go past the 256-token limit."] * 40),
    "The quick brown fox jumps over the lazy dog. " * 5,
]


@pytest.fixture(scope="module")
def minilm_folder(minilm_path):
    return minilm_path


@pytest.fixture(scope="module")
def minilm(minilm_folder):
    return pyengine.load(minilm_folder)


def test_minilm_matches_sentence_transformers(minilm, minilm_folder):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(minilm_folder), device="cpu")
    want = ref.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    got = minilm.encode(SENTENCES, batch_size=4)
    assert got.shape == want.shape == (len(SENTENCES), 384)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.99999, cos
    assert np.abs(got - want).max(axis=1).max() <= 1e-5


def test_batches_equal_single_texts_and_threads(minilm, threads):
    batch = minilm.encode(SENTENCES, batch_size=3)
    for text, row in zip(SENTENCES, batch):
        single = minilm.encode(text)
        assert single.shape == (384,)
        np.testing.assert_allclose(single, row, rtol=0, atol=2e-6)
    previous = pyengine.get_num_threads()
    try:
        pyengine.set_num_threads(1)
        one = minilm.encode(SENTENCES)
        pyengine.set_num_threads(2)
        two = minilm.encode(SENTENCES)
    finally:
        pyengine.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)


def test_normalize_and_output_options(minilm):
    raw = minilm.encode(["a sentence"], normalize=False)
    unit = minilm.encode(["a sentence"])
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw), atol=1e-6)
    assert isinstance(minilm.encode("x", output="list"), list)


@pytest.mark.parametrize(
    ("texts", "error", "match"),
    [
        ([], ValueError, "texts is empty"),
        (None, TypeError, "texts must be a string or a list"),
        (["ok", None], TypeError, r"texts\[1\] must be a str, got NoneType"),
        (["ok", 3], TypeError, r"texts\[1\] must be a str, got int"),
    ],
)
def test_bad_input(minilm, texts, error, match):
    with pytest.raises(error, match=match):
        minilm.encode(texts)


def test_forward_validates(minilm):
    ids = np.array([[101, 2023, 102]])
    with pytest.raises(ValueError, match="right padding"):
        minilm.forward(ids, np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        minilm.forward(np.array([[101, 10**6]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="exceeds the model's 512 positions"):
        minilm.forward(np.ones((1, 600), np.int64), np.ones((1, 600)))


def _random_encoder(kind, folder):
    torch.manual_seed(7)
    if kind == "bert-base-shape":  # 12 heads of 64, two layers to stay quick
        cfg = transformers.BertConfig(
            vocab_size=300,
            hidden_size=768,
            num_hidden_layers=2,
            num_attention_heads=12,
            intermediate_size=1024,
            max_position_embeddings=128,
        )
        model = transformers.BertModel(cfg)
    else:
        cfg = transformers.RobertaConfig(
            vocab_size=300,
            hidden_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=160,
            max_position_embeddings=130,
            pad_token_id=1,
            type_vocab_size=1,
        )
        model = transformers.RobertaModel(cfg, add_pooling_layer=False)
    model.eval().save_pretrained(folder)
    return model


@pytest.mark.parametrize("kind", ["bert-base-shape", "roberta"])
def test_random_encoders_match_transformers(kind, tmp_path, threads):
    hf = _random_encoder(kind, tmp_path)
    model = pyengine.load(tmp_path)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 300, (3, 21))
    mask = np.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 4:] = 0
    pad = 1 if kind == "roberta" else 0
    ids[mask == 0] = pad
    types = np.zeros_like(ids)
    if kind != "roberta":
        types[:, 10:] = 1
    with torch.no_grad():
        want = hf(
            torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            token_type_ids=torch.from_numpy(types),
        ).last_hidden_state.numpy()
    got = model.forward(ids, mask, types)
    real = mask.astype(bool)
    err = np.abs(got - want)[real].max()
    assert err <= HIDDEN_RTOL * np.abs(want[real]).max(), err
