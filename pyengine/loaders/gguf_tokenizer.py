"""Rebuild a `tokenizers.Tokenizer` from GGUF metadata.

A GGUF file carries no tokenizer.json: llama.cpp stores the vocabulary and settings as
metadata keys, and re-implements the tokenizer in C++. This module assembles the same tokenizer
from the `tokenizers` library's parts, for the two kinds of `tokenizer.ggml.model` that cover the
dense decoders we run:

    tokenizer.ggml.tokens       the vocabulary
    tokenizer.ggml.token_type   1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    tokenizer.ggml.{bos,eos,unknown,padding}_token_id, add_bos_token, add_eos_token

"gpt2": byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM ...). Tokens are spelled in GPT-2's
byte-to-unicode alphabet, and

    tokenizer.ggml.merges       "left right" pairs, highest priority first
    tokenizer.ggml.pre          which pre-tokenizer split the merges were trained with

The pre-tokenizer is the list of regexes llama.cpp applies for that `pre` value (llama-vocab.cpp),
each splitting the pieces of the previous one, followed by the byte-level mapping.

"llama": SentencePiece BPE (Llama 2, TinyLlama, Mistral, Gemma ...). Tokens are pieces with "▁"
for a space, "<0x00>".."<0xFF>" byte tokens (type 6) for characters outside the vocabulary, and

    tokenizer.ggml.scores       one float per token: merge priority, highest first
    tokenizer.ggml.add_space_prefix   prepend a space to the text (default true)

There are no merges: llama.cpp's SPM tokenizer, like SentencePiece, starts from characters and
keeps joining the adjacent pair whose concatenation is a token with the highest score. A BPE model
whose merges are every cut of every token into two tokens, ranked by the token's score, does the
same (`sentencepiece_merges`), except where scores tie: ties go by token id (SentencePiece's
trained order), where llama.cpp joins the leftmost pair, which matters only for vocabularies
whose scores are all equal. Text is not pre-split: pieces may span spaces ("▁▁▁" indentation).
The space prefix goes before every run of text that starts the input or follows an added token,
as llama.cpp does (and Hugging Face's "legacy" Llama tokenizer; its newer Metaspace form adds it
only at the start of the input, and not before text that already starts with a space).

In both, control and unknown tokens (types 3, 2) become special added tokens, user-defined ones
(type 4) plain added tokens: both are matched whole in the input, as llama.cpp does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import CheckpointError, UnsupportedModelError
from .typed_keys import TypedKeys

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 2, 3, 4
SPACE = "\u2581"  # SentencePiece's spelling of " " ("▁", LOWER ONE EIGHTH BLOCK)

# GPT-2's split, as in tokenizers' ByteLevel pre-tokenizer
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# tokenizer.ggml.pre -> the regexes llama.cpp splits with, in order
PRE_TOKENIZER_REGEXES: dict[str, tuple[str, ...]] = {
    "gpt-2": (_GPT2,),
    "gpt2": (_GPT2,),
    # StarCoder-derived vocabularies: every digit alone, then GPT-2's split
    "smollm": (r"\p{N}", _GPT2),
    "starcoder": (r"\p{N}", _GPT2),
    "refact": (r"\p{N}", _GPT2),
    "codeshell": (r"\p{N}", _GPT2),
    "llama3": (_LLAMA3,),
    "llama-v3": (_LLAMA3,),
    "llama-bpe": (_LLAMA3,),
    "falcon3": (_LLAMA3,),
    "falcon-h1": (_LLAMA3,),
    "pixtral": (_LLAMA3,),
    "midm-2.0": (_LLAMA3,),
    "lfm2": (_LLAMA3,),
    "smaug-bpe": (_LLAMA3,),
    "dbrx": (_LLAMA3,),
    "qwen2": (_QWEN2,),
    "deepseek-r1-qwen": (_QWEN2,),
}
# llama.cpp's LLAMA_VOCAB_PRE_TYPE_LLAMA3 group: BOS added unless the file says otherwise, and
# a word found whole in the vocabulary is not split by merges (ignore_merges)
_LLAMA3_LIKE = {
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
}

SPECIAL_TOKEN_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "unk": "tokenizer.ggml.unknown_token_id",
    "pad": "tokenizer.ggml.padding_token_id",
}
# llama.cpp's ids for a SentencePiece vocabulary whose file does not state them
_SPM_DEFAULT_IDS = {"bos": 1, "eos": 2, "unk": 0}


def tokenizer_settings(metadata: Mapping[str, Any], source: str = "model.gguf") -> dict[str, Any]:
    """Special-token strings and add_bos/add_eos as the file states them (llama.cpp defaults
    where it does not), and the chat template. CheckpointError for a key of the wrong type."""
    keys = TypedKeys(metadata, source)
    tokens = keys.strings("tokenizer.ggml.tokens") or []
    sentencepiece = metadata.get("tokenizer.ggml.model") == "llama"
    defaults = _SPM_DEFAULT_IDS if sentencepiece else {}
    special = {}
    for role, key in SPECIAL_TOKEN_KEYS.items():
        token_id = keys.optional_int(key)
        if token_id is None:
            token_id = defaults.get(role)
        special[role] = (
            tokens[token_id] if token_id is not None and token_id < len(tokens) else None
        )
    pre = keys.string("tokenizer.ggml.pre", None)
    add_bos = keys.flag("tokenizer.ggml.add_bos_token", None)
    if add_bos is None:  # llama.cpp: on for SentencePiece and the Llama 3 group
        add_bos = sentencepiece or pre in _LLAMA3_LIKE
    return {
        "special_tokens": special,
        "add_bos_token": add_bos,
        "add_eos_token": keys.flag("tokenizer.ggml.add_eos_token", False),
        "chat_template": keys.string("tokenizer.chat_template", None),
    }


def tokenizer_from_gguf(metadata: Mapping[str, Any], source: str = "model.gguf"):
    """A `tokenizers.Tokenizer` equivalent to llama.cpp's for this file.

    Raises UnsupportedModelError for a tokenizer model other than "gpt2" or "llama", or an
    unknown pre-tokenizer, and CheckpointError for inconsistent vocabulary metadata.
    """
    from tokenizers import AddedToken

    keys = TypedKeys(metadata, source)
    kind = keys.string("tokenizer.ggml.model", None)
    if kind not in _BUILDERS:
        raise UnsupportedModelError(
            f"{source}: unsupported tokenizer.ggml.model {kind!r}; supported: 'gpt2' (byte-level "
            "BPE), 'llama' (SentencePiece BPE). Load the weights alone with with_tokenizer=False."
        )
    tokens = keys.strings("tokenizer.ggml.tokens") or []
    types = keys.integers("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens)
    if not tokens:
        raise CheckpointError(f"{source}: tokenizer.ggml.tokens is missing or empty")
    if len(types) != len(tokens):
        raise CheckpointError(
            f"{source}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens"
        )
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        # llama.cpp keeps the first id of a duplicated string, as does a dict built in order
        vocab.setdefault(token, index)
    settings = tokenizer_settings(metadata, source)
    tokenizer, post_steps = _BUILDERS[kind](keys, tokens, vocab, settings, source)

    # only the first id of a duplicated string is reachable, so only it can be an added token
    special, user = [], []
    for index, (token, kind_) in enumerate(zip(tokens, types)):
        if vocab[token] != index:
            continue
        if kind_ in (TOKEN_CONTROL, TOKEN_UNKNOWN):
            special.append(AddedToken(token, special=True, normalized=False))
        elif kind_ == TOKEN_USER_DEFINED:
            user.append(AddedToken(token, special=False, normalized=False))
    if special:
        tokenizer.add_special_tokens(special)
    if user:
        tokenizer.add_tokens(user)

    post_steps += _bos_eos_template(settings, vocab, source)
    if len(post_steps) == 1:
        tokenizer.post_processor = post_steps[0]
    elif post_steps:
        from tokenizers import processors

        tokenizer.post_processor = processors.Sequence(post_steps)
    return tokenizer


def _byte_level_bpe(keys: TypedKeys, tokens, vocab, settings, source):
    """tokenizer.ggml.model "gpt2": the merges as stored, split by `tokenizer.ggml.pre`'s regexes.
    Returns the tokenizer and the post-processing steps that precede BOS/EOS."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    pre = keys.get("tokenizer.ggml.pre", "default")
    if not isinstance(pre, str) or pre not in PRE_TOKENIZER_REGEXES:
        raise UnsupportedModelError(
            f"{source}: unsupported tokenizer.ggml.pre {pre!r}; supported: "
            f"{', '.join(PRE_TOKENIZER_REGEXES)}"
        )
    merges = []
    for index, merge in enumerate(keys.strings("tokenizer.ggml.merges") or []):
        parts = merge.split(" ")
        if len(parts) != 2 or parts[0] not in vocab or parts[1] not in vocab:
            raise CheckpointError(f"{source}: tokenizer.ggml.merges[{index}] {merge!r} is invalid")
        merges.append((parts[0], parts[1]))

    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            unk_token=settings["special_tokens"]["unk"],
            fuse_unk=False,
            byte_fallback=False,
            ignore_merges=pre in _LLAMA3_LIKE,
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in PRE_TOKENIZER_REGEXES[pre]]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer, [processors.ByteLevel(trim_offsets=False)]


def _sentencepiece_bpe(keys: TypedKeys, tokens, vocab, settings, source):
    """tokenizer.ggml.model "llama": merges derived from the scores, no pre-tokenizer, byte
    fallback. Returns the tokenizer and the post-processing steps that precede BOS/EOS (none)."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    scores = keys.numbers("tokenizer.ggml.scores")
    if scores is None:
        raise CheckpointError(
            f"{source}: tokenizer.ggml.scores is missing; a SentencePiece ('llama') vocabulary "
            "needs one score per token to order its merges"
        )
    if len(scores) != len(tokens):
        raise CheckpointError(
            f"{source}: tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} tokens"
        )
    add_space_prefix = keys.flag("tokenizer.ggml.add_space_prefix", True)

    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=sentencepiece_merges(tokens, scores, vocab),
            unk_token=settings["special_tokens"]["unk"],
            fuse_unk=True,
            byte_fallback=True,  # a character outside the vocabulary -> its UTF-8 byte tokens
        )
    )
    # a normalizer, not a pre-tokenizer: it runs on each run of text between added tokens, so the
    # prefix follows every added token as in llama.cpp, and the text is not split at spaces
    escape = [normalizers.Replace(" ", SPACE)]
    prefix = [normalizers.Prepend(SPACE)] if add_space_prefix else []
    tokenizer.normalizer = normalizers.Sequence(prefix + escape)
    steps = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_space_prefix:  # drop the one space the prefix added
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer, []


_BUILDERS = {"gpt2": _byte_level_bpe, "llama": _sentencepiece_bpe}


def sentencepiece_merges(
    tokens: list[str], scores: list[float], vocab: Mapping[str, int]
) -> list[tuple[str, str]]:
    """BPE merges, best first, that encode as SentencePiece's BPE does with these scores.

    SentencePiece (and llama.cpp's SPM tokenizer) joins the adjacent pair of symbols whose
    concatenation is a token of the highest score. A BPE model ranks pairs instead of results, so
    each way of cutting a token into two tokens becomes a merge with that token's score. Equal
    scores rank by token id (SentencePiece's BPE trainer numbers pieces in merge order); where
    two different tokens tie, SentencePiece would take the leftmost pair instead, which no fixed
    ranking can express. vocab maps each string to its first id; later duplicates are skipped.
    """
    ranked = []  # (-score, token id, cut position)
    for index, token in enumerate(tokens):
        if vocab[token] != index:
            continue
        for cut in range(1, len(token)):
            if token[:cut] in vocab and token[cut:] in vocab:
                ranked.append((-scores[index], index, cut))
    ranked.sort()
    return [(tokens[index][:cut], tokens[index][cut:]) for _, index, cut in ranked]


def _bos_eos_template(settings: Mapping[str, Any], vocab: Mapping[str, int], source: str) -> list:
    """[TemplateProcessing] adding BOS/EOS as the settings say, or [] when neither is added."""
    from tokenizers import processors

    bos, eos = settings["special_tokens"]["bos"], settings["special_tokens"]["eos"]
    add_bos, add_eos = settings["add_bos_token"], settings["add_eos_token"]
    if (add_bos and bos is None) or (add_eos and eos is None):
        raise CheckpointError(f"{source}: add_bos/add_eos is set but the token id is missing")
    if not (add_bos or add_eos):
        return []

    def template(sequence: str, type_id: int) -> list[str]:
        # "[BOS]:0 $A:0 [EOS]:0"; the pair template repeats it with type id 1 for $B
        pieces = [bos] if add_bos else []
        pieces.append(sequence)
        pieces += [eos] if add_eos else []
        return [f"{piece}:{type_id}" for piece in pieces]

    used = {t for t, on in ((bos, add_bos), (eos, add_eos)) if on}
    try:
        return [
            processors.TemplateProcessing(
                single=template("$A", 0),
                pair=template("$A", 0) + template("$B", 1),
                special_tokens=[(t, vocab[t]) for t in used],
            )
        ]
    except Exception as exc:  # tokenizers raises a bare Exception for a bad template
        raise UnsupportedModelError(
            f"{source}: cannot express BOS/EOS {sorted(used)} as a template: {exc}"
        ) from exc
