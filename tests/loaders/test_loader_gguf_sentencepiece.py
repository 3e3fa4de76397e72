"""SentencePiece vocabularies in GGUF (tokenizer.ggml.model "llama": Llama 2, TinyLlama, Mistral,
Gemma ...): the tokenizer rebuilt from the metadata against the sentencepiece processor of a model
trained here, and against transformers' own GGUF tokenizer.

The files are written as convert_hf_to_gguf.py writes them (tokens, scores, token types, special
ids) and read back through the loader's own reader; no tensors are needed for the tokenizer.
"""

from __future__ import annotations

import io
import random

import gguf
import pytest

from pyengine.loaders import CheckpointError
from pyengine.loaders.gguf_file import read_gguf
from pyengine.loaders.gguf_tokenizer import (
    sentencepiece_merges,
    tokenizer_from_gguf,
    tokenizer_settings,
)

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
USER_SYMBOLS = ["<tool>"]

# ---- a training corpus: prose, accents, emoji, CJK, code, whitespace runs

BASE = [
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, there was a little model that wanted to talk.",
    "Hello world! How are you doing today?",
    "Café, naïve, résumé, jalapeño, Zürich, façade, coöperate.",
    "Ünïcödé text with àccents: été, über, señor, crème brûlée.",
    "Emoji time 🙂 🚀 🤗 and more 🎉🎉 text.",
    "日本語のテキストです。東京は大きな都市です。",
    "中文文本，你好世界。今天天气很好。",
    "한국어 문장입니다. 안녕하세요.",
    "Русский текст: привет, мир!",
    "Ελληνικά: καλημέρα κόσμε.",
    "def add(a, b):\n    return a + b",
    "for (int i = 0; i < n; ++i) { sum += x[i]; }",
    "if x == 1:\n\tprint('tab indented')",
    "    four leading spaces and two trailing  ",
    "a  b   c    d     e",
    "Numbers: 12345, 3.14159, 2024-01-01, 0xFF, 1e-5.",
    "URL: https://example.com/path?query=1&x=y#frag",
    'JSON: {"key": [1, 2, 3], "nested": {"a": null}}',
    "Markdown **bold** _italic_ `code` > quote",
    "Tabs\tbetween\twords\tare\there.",
    "Mixed: abc123def ÄÖÜ äöü ß 漢字 🙂!",
]
WORDS = (
    "time model token text space code the a of and to in is for on with as be at by tokenizer "
    "merge piece byte vocabulary sentence llama engine fast small large résumé naïve über 東京 "
    "世界 привет мир 🙂 🚀 x y z 42 7 100"
).split()
SEPARATORS = [" ", " ", " ", "  ", ", ", ". ", "\t", "   "]


def corpus(lines: int, seed: int) -> list[str]:
    """Random lines of WORDS joined by spaces, runs of spaces, tabs and punctuation; some lines
    start with spaces."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        line = words[0] + "".join(rng.choice(SEPARATORS) + w for w in words[1:])
        if rng.random() < 0.2:
            line = " " * rng.randint(1, 4) + line
        out.append(line)
    return out


# strings the vocabulary was not trained on: edges of whitespace, newlines, characters outside
# the vocabulary (byte fallback: Cyrillic ж, most CJK, new emoji), the empty string
TEXTS = [
    "",
    " ",
    "   ",
    "hello world",
    " hello",
    "  two leading spaces",
    "trailing  ",
    "a  b   c    d",
    "line one\nline two\n\n",
    "\n\nstarts with newlines",
    "\ttab\t\tand tabs",
    "日本語のテキスト 東京 中文 🙂",
    "жжж ж Ωmega ꙮ",
    "🤖👾 🦙 emoji outside the vocabulary",
    "naïve café résumé",
    "def f(x):\n    return x ** 2  # square\n",
    "x = [1, 2, 3]; y = {'a': 12345}",
    "Mixed: abc123def ÄÖÜ 漢字 🙂!",
    *BASE,
    *corpus(120, seed=1),
]


def train(**options) -> bytes:
    """A SentencePiece BPE model trained as Llama's was: byte fallback, digits split, whitespace
    kept as it is (identity normalization, no collapsing of runs). Characters below 99.5%
    coverage get no piece of their own and reach the byte tokens."""
    spm = pytest.importorskip("sentencepiece")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(BASE * 3 + corpus(300, seed=0)),
        model_writer=model,
        model_type="bpe",
        vocab_size=800,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        character_coverage=0.995,
        user_defined_symbols=USER_SYMBOLS,
        minloglevel=2,
        **options,
    )
    return model.getvalue()


def pieces(sp) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and GGUF token types, as convert_hf_to_gguf.py reads them."""
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(UNKNOWN)
        elif sp.is_control(i):
            types.append(CONTROL)
        elif sp.is_unused(i):
            types.append(UNUSED)
        elif sp.is_byte(i):
            types.append(BYTE)
        elif tokens[-1] in USER_SYMBOLS:
            types.append(USER_DEFINED)
        else:
            types.append(NORMAL)
    return tokens, scores, types


def write_vocab(path, tokens, scores, types, **keys) -> None:
    """A GGUF with no tensors: the tokenizer metadata, and the llama.* keys llama.cpp reads even
    to open a file vocab_only. keys: bos/eos/unk ids, add_bos, add_eos, add_space_prefix; None
    leaves a key out, as does scores=None."""
    keys = {"bos": 1, "eos": 2, "unk": 0, "add_bos": True, "add_eos": False, **keys}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(1)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    if scores is not None:
        writer.add_token_scores(scores)
    writer.add_token_types(types)
    adders = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "unk": writer.add_unk_token_id,
        "add_bos": writer.add_add_bos_token,
        "add_eos": writer.add_add_eos_token,
        "add_space_prefix": writer.add_add_space_prefix,
    }
    for key, value in keys.items():
        if value is not None:
            adders[key](value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def read_vocab(path):
    """The tokenizer and settings, through the same calls load_gguf makes."""
    metadata = read_gguf(path)[0]
    return tokenizer_from_gguf(metadata, str(path)), tokenizer_settings(metadata)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(sentencepiece processor, path of its GGUF)"""
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_proto=train())
    path = tmp_path_factory.mktemp("spm") / "spm.gguf"
    write_vocab(path, *pieces(sp))
    return sp, path


# ---- against the sentencepiece processor


def test_ids_and_text_match_sentencepiece(trained):
    sp, path = trained
    tok, settings = read_vocab(path)
    assert tok.get_vocab_size() == sp.get_piece_size()
    assert settings["special_tokens"] == {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": None}
    byte_ids = {sp.piece_to_id(f"<0x{b:02X}>") for b in range(256)}
    fell_back = 0
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert ids == sp.encode(text), text
        assert tok.encode(text).ids == [sp.bos_id(), *ids], text  # add_bos_token
        assert tok.decode(ids) == sp.decode(ids) == text, text
        fell_back += any(i in byte_ids for i in ids)
    assert fell_back >= 5  # the strings do reach the byte tokens


def test_no_space_prefix_matches_sentencepiece_without_dummy_prefix(tmp_path):
    """tokenizer.ggml.add_space_prefix = false (Gemma): no "▁" before the text, none stripped."""
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_proto=train(add_dummy_prefix=False))
    write_vocab(tmp_path / "spm.gguf", *pieces(sp), add_space_prefix=False)
    tok, _ = read_vocab(tmp_path / "spm.gguf")
    assert tok.encode("hello", add_special_tokens=False).tokens[0] != "▁hello"
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert ids == sp.encode(text), text
        assert tok.decode(ids) == sp.decode(ids) == text, text


def test_equal_scores_rank_merges_by_token_id(trained, tmp_path):
    """convert_hf_to_gguf.py writes -1000 for every score of a vocabulary it read from
    tokenizer.json alone. Ties rank by id, the order SentencePiece's trainer added the pieces, so
    such a file still encodes as the original (llama.cpp would join the leftmost pair instead)."""
    sp, _ = trained
    tokens, _, types = pieces(sp)
    write_vocab(tmp_path / "flat.gguf", tokens, [-1000.0] * len(tokens), types)
    tok, _ = read_vocab(tmp_path / "flat.gguf")
    for text in TEXTS:
        assert tok.encode(text, add_special_tokens=False).ids == sp.encode(text), text


# ---- against llama.cpp (llama-cpp-python) reading the same GGUF


def test_ids_and_text_match_llama_cpp(trained):
    """The encoding the file was made for, added tokens included. llama-cpp-python's detokenize
    keeps the space the prefix added; llama.cpp's llama_detokenize, transformers and we drop it."""
    llama_cpp = pytest.importorskip("llama_cpp")
    _, path = trained
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    tok, _ = read_vocab(path)
    for text in [*TEXTS, "x<tool>y", "a</s>b<unk>c", "<s> x<s>  y"]:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert ids == llm.tokenize(text.encode(), add_bos=False, special=True), text
        assert tok.encode(text).ids == llm.tokenize(text.encode(), add_bos=True, special=True)
        if text and not text.startswith("<s>"):
            spaced = llm.detokenize(ids).decode()
            assert spaced[0] == " " and tok.decode(ids) == spaced[1:], text


# ---- against transformers' tokenizer for the same GGUF


def test_ids_and_text_match_transformers(trained):
    """AutoTokenizer(gguf_file=...) builds the non-legacy Llama tokenizer (Metaspace, prefix
    only at the start of the input and only where the text does not start with a space); on text
    that starts with neither a space nor an added token, it and llama.cpp agree."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    sp, path = trained
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tok, _ = read_vocab(path)
    compared = 0
    for text in TEXTS:
        if text.startswith(" "):
            continue
        ids = tok.encode(text).ids
        assert ids == hf.encode(text), text
        assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=True), text
        compared += 1
    assert compared > 100


# ---- where llama.cpp's rules show


def test_space_prefix_follows_llama_cpp(trained):
    """llama.cpp puts a space before the text, also when it already starts with one, and again
    after every added token (sentencepiece has no added tokens to follow)."""
    sp, path = trained
    tok, _ = read_vocab(path)

    def tokens(text):
        return tok.encode(text, add_special_tokens=False).tokens

    assert tokens(" hi") == sp.encode(" hi", out_type=str)
    assert tokens(" hi")[0] == "▁▁"
    # control tokens are special, the user-defined one plain: all matched whole
    assert tokens("x<tool>y") == ["▁x", "<tool>", "▁y"]
    assert tokens("<s>x</s>y") == ["<s>", "▁x", "</s>", "▁y"]
    assert tokens("<s> x") == ["<s>", *sp.encode(" x", out_type=str)]
    ids = tok.encode("x<tool>y</s>", add_special_tokens=False).ids
    assert tok.decode(ids) == "x<tool> y"  # the prefix after an added token stays in the text
    assert tok.decode(ids, skip_special_tokens=False) == "x<tool> y</s>"


def test_bos_eos_and_llama_cpp_defaults(trained, tmp_path):
    sp, _ = trained
    tokens, scores, types = pieces(sp)
    hello = sp.encode("hello")

    write_vocab(tmp_path / "eos.gguf", tokens, scores, types, add_bos=False, add_eos=True)
    tok, settings = read_vocab(tmp_path / "eos.gguf")
    assert (settings["add_bos_token"], settings["add_eos_token"]) == (False, True)
    assert tok.encode("hello").ids == [*hello, sp.eos_id()]
    pair = tok.encode("hello", "hello")
    assert pair.ids == [*hello, sp.eos_id(), *hello, sp.eos_id()]

    # nothing stated: llama.cpp's SentencePiece defaults, BOS on, ids 1, 2, 0
    keys = dict.fromkeys(["bos", "eos", "unk", "add_bos", "add_eos"])
    write_vocab(tmp_path / "bare.gguf", tokens, scores, types, **keys)
    tok, settings = read_vocab(tmp_path / "bare.gguf")
    assert settings["special_tokens"] == {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": None}
    assert (settings["add_bos_token"], settings["add_eos_token"]) == (True, False)
    assert tok.encode("hello").ids == [sp.bos_id(), *hello]


# ---- the merges, on a vocabulary small enough to check by hand


def test_merges_rank_every_cut_by_the_score_of_its_token():
    tokens = ["a", "b", "c", "ab", "bc", "abc", "<s>"]
    scores = [-10.0, -11.0, -12.0, -2.0, -1.0, -3.0, 0.0]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert sentencepiece_merges(tokens, scores, vocab) == [
        ("b", "c"),  # bc, -1
        ("a", "b"),  # ab, -2
        ("a", "bc"),  # abc, -3: both cuts, left one first
        ("ab", "c"),
    ]


@pytest.mark.parametrize(
    ("ab", "bc", "expected"),
    [(-1.0, -2.0, ["▁", "ab", "c"]), (-2.0, -1.0, ["▁", "a", "bc"])],
)
def test_the_best_scored_pair_joins_first(tmp_path, ab, bc, expected):
    """SentencePiece's rule, not the order of the text: "abc" -> the pair whose token scores
    higher."""
    tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "c", "ab", "bc"]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    scores = [0.0] * 3 + [-5.0, -6.0, -7.0, -8.0, ab, bc] + [0.0] * 256
    types = [UNKNOWN, CONTROL, CONTROL] + [NORMAL] * 6 + [BYTE] * 256
    write_vocab(tmp_path / "abc.gguf", tokens, scores, types)
    tok, _ = read_vocab(tmp_path / "abc.gguf")
    assert tok.encode("abc", add_special_tokens=False).tokens == expected
    assert tok.encode("abcd", add_special_tokens=False).tokens == [*expected, "<0x64>"]
    assert tok.decode(tok.encode("abcd").ids) == "abcd"


# ---- broken files


def test_scores_missing_or_of_the_wrong_length(trained, tmp_path):
    sp, _ = trained
    tokens, scores, types = pieces(sp)
    write_vocab(tmp_path / "none.gguf", tokens, None, types)
    with pytest.raises(CheckpointError, match=r"none\.gguf: tokenizer\.ggml\.scores is missing"):
        read_vocab(tmp_path / "none.gguf")
    write_vocab(tmp_path / "short.gguf", tokens, scores[:-1], types)
    with pytest.raises(
        CheckpointError,
        match=rf"short\.gguf: tokenizer\.ggml\.scores has {len(tokens) - 1} entries for "
        rf"{len(tokens)} tokens",
    ):
        read_vocab(tmp_path / "short.gguf")
    write_vocab(tmp_path / "types.gguf", tokens, scores, types[:3])
    with pytest.raises(CheckpointError, match=r"types\.gguf: tokenizer\.ggml\.token_type has 3"):
        read_vocab(tmp_path / "types.gguf")
