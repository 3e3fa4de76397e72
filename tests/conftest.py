"""Fixtures shared by all tests."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

from helpers import ISA_LEVELS  # noqa: E402

import pyengine  # noqa: E402
from pyengine.loaders import REGISTRY, resolve  # noqa: E402


@pytest.fixture(params=ISA_LEVELS)
def isa(request):
    """Every ISA level this machine can run, each tested directly."""
    return request.param


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    previous = pyengine.get_num_threads()
    pyengine.set_num_threads(request.param)
    yield request.param
    pyengine.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_llama_folder(tmp_path_factory):
    """A random-weight 2-layer Llama folder (safetensors, config, a byte-level BPE tokenizer
    trained here, a chat template): the real loading path, in a second."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    text = ["Once upon a time there was a small model.", "Ünïcödé and emoji 🙂 text", "a b c"]
    tok.train_from_iterator(text * 20, trainer)

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=1,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        '{"bos_token": "<s>", "eos_token": "</s>", "chat_template": '
        '"{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}'
        '{% if add_generation_prompt %}<assistant>{% endif %}"}'
    )
    return folder


# ---- real models shipped as pip packages (skipped, naming the pip command, when absent) ----


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(REGISTRY[name].package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def require_model(name: str):
    """Path of a registry model, or skip naming the pip command that provides it."""
    if not _installed(name):
        pytest.skip(f"{name} not installed: {REGISTRY[name].pip_command}")
    return resolve(name)


@pytest.fixture(name="require_model", scope="session")
def require_model_fixture():
    return require_model


@pytest.fixture(scope="session")
def smollm2_path():
    return require_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def minilm_path():
    return require_model("all-minilm-l6-v2")
