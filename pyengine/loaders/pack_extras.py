"""The extras a pack file carries (chat template, special tokens, tokenizer and generation
configs, sentence-transformers pooling), checked for type as the loaders check them in their
source files: a pack header is read from disk like any checkpoint, so a value of the wrong type
must end in a CheckpointError naming the file, not in an AttributeError at generation time."""

from __future__ import annotations

from typing import Any

from .errors import CheckpointError
from .safetensors_folder import check_tokenizer_config
from .typed_keys import TypedKeys

# the extras a model reads (pyengine.models.encoder, pyengine.generation); a pack keeps these
KEPT = (
    "format",
    "chat_template",
    "special_tokens",
    "add_bos_token",
    "add_eos_token",
    "tokenizer_config",
    "generation_config",
    "max_seq_length",
    "sentence_transformers",
)


def _string_map(value: Any, source: str) -> dict:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or v is None for v in value.values()
    ):
        raise CheckpointError(f"{source} is not an object of strings")
    return value


def _sentence_transformers(value: Any, source: str) -> dict:
    if not isinstance(value, dict):
        raise CheckpointError(f"{source} is not an object")
    keys = TypedKeys(value, source)
    modules = keys.strings("modules") or []
    pooling = value.get("pooling")
    if pooling is not None:
        if not isinstance(pooling, dict):
            raise CheckpointError(f"{source}: pooling is not an object")
        modes = TypedKeys(pooling, f"{source}: pooling").strings("modes")
        pooling = {"modes": modes or [], "config": pooling.get("config")}
    limit = value.get("max_seq_length")
    return {
        "modules": modules,
        "pooling": pooling,
        "normalize": keys.flag("normalize", False),
        "max_seq_length": None if limit is None else keys.positive("max_seq_length"),
        "do_lower_case": keys.flag("do_lower_case", False),
    }


def checked_extras(extras: Any, source: str) -> dict[str, Any]:
    """The KEPT entries of `extras`, each checked (CheckpointError naming `source`)."""
    if not isinstance(extras, dict):
        raise CheckpointError(f"{source}: holds no extras object")
    keys = TypedKeys(extras, f"{source}: extras")
    out: dict[str, Any] = {
        "format": keys.string("format", None),
        "chat_template": keys.string("chat_template", None),
    }
    if extras.get("special_tokens") is not None:
        out["special_tokens"] = _string_map(extras["special_tokens"], f"{source}: special_tokens")
    for flag in ("add_bos_token", "add_eos_token"):
        if flag in extras:
            out[flag] = keys.flag(flag, None)
    if extras.get("tokenizer_config") is not None:
        out["tokenizer_config"] = check_tokenizer_config(
            extras["tokenizer_config"], f"{source}: tokenizer_config"
        )
    gen = extras.get("generation_config")
    if gen is not None:
        if not isinstance(gen, dict):
            raise CheckpointError(f"{source}: generation_config is not an object")
        TypedKeys(gen, f"{source}: generation_config").ids("eos_token_id")
        out["generation_config"] = gen
    if extras.get("max_seq_length") is not None:
        out["max_seq_length"] = keys.positive("max_seq_length")
    if extras.get("sentence_transformers") is not None:
        out["sentence_transformers"] = _sentence_transformers(
            extras["sentence_transformers"], f"{source}: sentence_transformers"
        )
    return out
