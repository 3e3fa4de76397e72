"""Mutated checkpoints through `pyengine.load`: every input ends in a model that runs, or in one
of pyengine's own exceptions (a `LoaderError`) whose message names the file or folder.

Never a crash, a hang (a load that takes HANG_SECONDS ends the process with a traceback), a
bare Python exception, or an allocation beyond a bound set by the input's real size (a header
claiming 10^12 elements must not allocate): Python-side allocations are traced with
tracemalloc, and numpy's arrays are among them.

Quick in CI (derandomized: the same inputs each run). A long run, with fresh random inputs:
    PYENGINE_FUZZ_EXAMPLES=10000 pytest tests/reliability/test_fuzz_loaders.py -s
prints the outcomes per format (and writes them to $PYENGINE_FUZZ_REPORT as JSON if set).
"""

from __future__ import annotations

import collections
import faulthandler
import json
import os
import shutil
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
import fuzz_seeds as seeds  # noqa: E402
import mutations as mut  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import pyengine  # noqa: E402
from pyengine.loaders import LoaderError  # noqa: E402
from pyengine.pack import pack  # noqa: E402

# pack files (pyengine pack) fuzzed: (name, seed it is packed from, dtype)
PACK_SEEDS = [
    ("gguf-blocks", "seed.gguf", "auto"),  # K-quant blocks run as stored
    ("gemma3-q4", "gemma3", "q4"),
    ("gpt2-bf16", "gpt2", "bfloat16"),
    ("encoder", "encoder", "float32"),
]
PACK_KEYS = ["pyengine_pack", "isa", "layout", "dtype", "log", "layers", "arrays", "blobs",
             "offset", "nbytes", "shape", "out", "in", "class", "format", "data", "bias", "blob",
             "config_inputs", "metadata", "shapes", "tokenizer", "extras", "seq", "layer",
             "array", "kind", "config"]  # fmt: skip

# inputs per format (GGUF's three mutation kinds share its count)
EXAMPLES = int(os.environ.get("PYENGINE_FUZZ_EXAMPLES", "60"))
HANG_SECONDS = 60
# Python-side allocation allowed per input: widening a tensor to float32 takes 4 bytes per
# value, at most ~8 values per stored byte (4-bit blocks), plus copies while packing
ALLOC_PER_FILE_BYTE, ALLOC_FLOOR = 64, 64 << 20

OUTCOMES: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= 500,  # CI sees the same inputs every run
    suppress_health_check=list(HealthCheck),
)
FUZZ_GGUF = settings(FUZZ, max_examples=-(-EXAMPLES // 3))

HF_CONFIG_KEYS = [
    "architectures",
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "tie_word_embeddings",
    "attention_bias",
    "mlp_bias",
    "sliding_window",
    "hidden_act",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "type_vocab_size",
    "layer_norm_eps",
    "position_embedding_type",
    "partial_rotary_factor",
    "factor",
    "rope_type",
    "original_max_position_embeddings",
    "low_freq_factor",
    "high_freq_factor",
    # the newer families' own keys
    "layer_types",
    "sliding_attention",
    "full_attention",
    "query_pre_attn_scalar",
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "rope_local_base_freq",
    "sliding_window_pattern",
    "use_sliding_window",
    "max_window_layers",
    "hidden_activation",
    "short_factor",
    "long_factor",
    "attention_factor",
    "type",
    "n_embd",
    "n_head",
    "n_layer",
    "n_positions",
    "n_inner",
    "activation_function",
]
TOKENIZER_KEYS = [
    "bos_token",
    "eos_token",
    "chat_template",
    "model_max_length",
    "eos_token_id",
    "type",
    "vocab",
    "merges",
    "added_tokens",
    "content",
    "special",
    "id",
    "pre_tokenizer",
    "post_processor",
    "decoder",
    "normalizer",
    "single",
    "pair",
    "special_tokens",
]
ST_KEYS = [
    "type",
    "path",
    "pooling_mode_mean_tokens",
    "pooling_mode_cls_token",
    "pooling_mode_max_tokens",
    "pooling_mode_weightedmean_tokens",
    "max_seq_length",
    "do_lower_case",
]


@pytest.fixture(scope="module", autouse=True)
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()
    if OUTCOMES:
        print("\nloader fuzzing outcomes:", json.dumps(OUTCOMES, sort_keys=True))
        report = os.environ.get("PYENGINE_FUZZ_REPORT")
        if report:
            Path(report).write_text(json.dumps({"examples": EXAMPLES, **OUTCOMES}, indent=1))


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-seeds")
    seeds.write_gguf_seed(root / "seed.gguf")
    seeds.write_llama_folder_seed(root / "llama")
    seeds.write_encoder_folder_seed(root / "encoder")
    for family in seeds.FAMILY_CONFIGS:
        seeds.write_family_folder_seed(root / family, family)
        seeds.write_family_gguf_seed(root / f"{family}.gguf", family, root / family)
    for name, source, dtype in PACK_SEEDS:
        pack(root / source, root / f"{name}.pack", dtype=dtype)
    return root


@pytest.fixture(scope="module")
def gguf_seed(seed_dir):
    """The GGUF seed's bytes and parts, read once."""
    data = (seed_dir / "seed.gguf").read_bytes()
    metadata, tensors = seeds.gguf_parts(seed_dir / "seed.gguf")
    header = len(data) - sum(len(t[3]) for t in tensors)
    positions = mut.tensor_info_positions(data, [t[0] for t in tensors])
    return {
        "data": data,
        "metadata": metadata,
        "tensors": tensors,
        "header": header,
        "positions": positions,
    }


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-inputs")


def fresh_copy(seed: Path, folder: Path) -> Path:
    """A fresh copy of a seed folder (the old copy unlinked, not overwritten, so that a model
    still mapping its files keeps valid mappings)."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(seed, folder)
    return folder


def replace_file(path: Path, data: bytes) -> None:
    """Write by rename: a model still mapping the old file keeps a valid mapping."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def exercise(model) -> None:
    """A loaded model must run: a forward pass on in-range ids, its tokenizer, a short
    generation or an embedding."""
    cfg = model.config
    if cfg.is_encoder:
        vectors = model.encode(["hello world", "a"])
        assert vectors.shape == (2, model.dim)
        return
    ids = [i % cfg.vocab_size for i in (0, 5, 9)][: cfg.max_position_embeddings]
    logits = model.forward([ids])
    assert logits.shape == (1, len(ids), cfg.vocab_size)
    if model.tokenizer is not None:
        prompt = model.tokenizer.encode("hello").ids
        if not prompt:  # a tokenizer edited to drop every character: a clear refusal
            with pytest.raises(ValueError, match="encodes to no tokens"):
                model.generate("hello", max_new_tokens=1)
        elif max(prompt) >= cfg.vocab_size:  # ids past the model's vocabulary: likewise
            with pytest.raises(ValueError, match="outside the vocabulary"):
                model.generate("hello", max_new_tokens=1)
        elif len(prompt) + 1 <= cfg.max_position_embeddings:
            model.generate("hello", max_new_tokens=1)


def check_load(kind: str, source: Path, named: Path, file_bytes: int) -> None:
    """Load `source` (a mutated input of `kind`) and check the outcome; `named` must appear in
    any error message."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]  # hypothesis's own state grows over a run
    try:
        try:
            model = pyengine.load(source)
        except LoaderError as exc:
            assert str(named) in str(exc), f"the error does not name {named}: {exc}"
            OUTCOMES[kind]["refused"] += 1
            return
        exercise(model)
        OUTCOMES[kind]["loaded"] += 1
    finally:
        faulthandler.cancel_dump_traceback_later()
        peak = tracemalloc.get_traced_memory()[1] - baseline
        bound = ALLOC_FLOOR + ALLOC_PER_FILE_BYTE * file_bytes
        assert peak <= bound, f"{kind}: {peak} bytes allocated for a {file_bytes}-byte input"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ---- GGUF


def check_gguf(work_dir: Path, mutated: bytes) -> None:
    path = work_dir / "fuzzed.gguf"
    replace_file(path, mutated)
    check_load("gguf", path, path, len(mutated))


@FUZZ_GGUF
@given(data=st.data())
def test_gguf_byte_edits(gguf_seed, work_dir, data):
    seed = gguf_seed["data"]
    mutated = mut.apply_byte_edits(seed, data.draw(mut.byte_edits(len(seed), gguf_seed["header"])))
    check_gguf(work_dir, mutated)


@FUZZ_GGUF
@given(data=st.data())
def test_gguf_metadata_edits(gguf_seed, work_dir, data):
    by_key = {m[0]: m for m in gguf_seed["metadata"]}
    for key, action, (kind, value) in data.draw(mut.gguf_metadata_edits(list(by_key))):
        if action == "delete":
            by_key.pop(key, None)
        else:
            by_key[key] = [key, kind, value]
    mutated = seeds.gguf_bytes(list(by_key.values()), gguf_seed["tensors"])
    check_gguf(work_dir, mutated)


@FUZZ_GGUF
@given(data=st.data())
def test_family_gguf_metadata_edits(seed_dir, work_dir, data):
    """Metadata edits of the other families' GGUF seeds: each family's own GGUF parser."""
    family = data.draw(st.sampled_from(list(seeds.FAMILY_CONFIGS)))
    metadata, tensors = seeds.gguf_parts(seed_dir / f"{family}.gguf")
    by_key = {m[0]: m for m in metadata}
    for key, action, (kind, value) in data.draw(mut.gguf_metadata_edits(list(by_key))):
        if action == "delete":
            by_key.pop(key, None)
        else:
            by_key[key] = [key, kind, value]
    check_gguf(work_dir, seeds.gguf_bytes(list(by_key.values()), tensors))


@FUZZ_GGUF
@given(data=st.data())
def test_gguf_tensor_info_edits(gguf_seed, work_dir, data):
    positions = gguf_seed["positions"]
    edits = data.draw(mut.tensor_info_edits(len(positions)))
    mutated = mut.apply_tensor_info_edits(gguf_seed["data"], positions, edits)
    check_gguf(work_dir, mutated)


# ---- pack files


def reframe_pack(raw: bytes, room: int, header) -> bytes:
    """`raw` with its header replaced by `header` and a valid checksum. A header that outgrew
    its room moves the blobs by whole pages, and the offsets it names move with them (the
    reader's checks, not a shifted data region, are what the edits should meet)."""

    def dump(h) -> bytes:
        return json.dumps(h, separators=(",", ":"), allow_nan=True).encode()

    text, shift = dump(header), 0
    if len(text) > room:  # 1 KiB to spare for the offsets' longer digits
        shift = -(-(len(text) + 1024 - room) // 4096) * 4096
        blobs = header.get("blobs") if isinstance(header, dict) else None
        for b in blobs if isinstance(blobs, list) else []:
            if isinstance(b, dict) and type(b.get("offset")) is int:
                b["offset"] += shift
        text = dump(header)
    text = text.ljust(room + shift)
    crc = zlib.crc32(text).to_bytes(4, "little")
    return raw[:12] + crc + len(text).to_bytes(8, "little") + text + raw[24 + room :]


@FUZZ
@given(data=st.data())
def test_pack_file_edits(seed_dir, work_dir, data):
    """Byte edits anywhere (the header's checksum refuses header edits; weight edits load and
    run), and JSON edits of the header written back with a valid checksum (the reader's own
    checks of every entry, blob and layer)."""
    name = data.draw(st.sampled_from([p[0] for p in PACK_SEEDS]))
    raw = (seed_dir / f"{name}.pack").read_bytes()
    room = int.from_bytes(raw[16:24], "little")
    if data.draw(st.booleans()):
        mutated = mut.apply_byte_edits(raw, data.draw(mut.byte_edits(len(raw), 24 + room)))
    else:
        header = json.loads(raw[24 : 24 + room])
        header = mut.apply_json_edits(header, data.draw(mut.json_edits(PACK_KEYS)))
        mutated = reframe_pack(raw, room, header)
    path = work_dir / "fuzzed.pack"
    replace_file(path, mutated)
    check_load("pack", path, path, len(mutated))


# ---- safetensors


@FUZZ
@given(data=st.data())
def test_safetensors_header_edits(seed_dir, work_dir, data):
    folder = fresh_copy(seed_dir / "llama", work_dir / "model")
    raw = (folder / "model.safetensors").read_bytes()
    length = int.from_bytes(raw[:8], "little")
    if data.draw(st.booleans()):  # the JSON header edited, then written back with its length
        header = json.loads(raw[8 : 8 + length])
        header = mut.apply_json_edits(header, data.draw(mut.json_edits(["dtype", "shape"])))
        text = mut.dump_json(header)
        mutated = len(text).to_bytes(8, "little") + text + raw[8 + length :]
    else:
        mutated = mut.apply_byte_edits(raw, data.draw(mut.byte_edits(len(raw), 8 + length)))
    replace_file(folder / "model.safetensors", mutated)
    check_load("safetensors", folder, folder, folder_bytes(folder))


# ---- config.json, tokenizer files, sentence-transformers files


def _json_file_case(seed_dir, work_dir, data, seed_name, files, keys, kind):
    folder = fresh_copy(seed_dir / seed_name, work_dir / "model")
    target = folder / data.draw(st.sampled_from(files))
    raw = target.read_bytes()
    if data.draw(st.integers(0, 3)) == 0:  # bytes: invalid UTF-8, truncated JSON, ...
        mutated = mut.apply_byte_edits(raw, data.draw(mut.byte_edits(len(raw), len(raw))))
    else:
        doc = mut.apply_json_edits(json.loads(raw), data.draw(mut.json_edits(keys)))
        mutated = mut.dump_json(doc)
    replace_file(target, mutated)
    check_load(kind, folder, folder, folder_bytes(folder))


@FUZZ
@given(data=st.data())
def test_config_json_edits(seed_dir, work_dir, data):
    seed = data.draw(st.sampled_from(["llama", "encoder", *seeds.FAMILY_CONFIGS]))
    _json_file_case(seed_dir, work_dir, data, seed, ["config.json"], HF_CONFIG_KEYS, "config.json")


@FUZZ
@given(data=st.data())
def test_tokenizer_file_edits(seed_dir, work_dir, data):
    files = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]
    _json_file_case(seed_dir, work_dir, data, "llama", files, TOKENIZER_KEYS, "tokenizer")


@FUZZ
@given(data=st.data())
def test_sentence_transformers_file_edits(seed_dir, work_dir, data):
    files = ["modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "tokenizer.json"]
    _json_file_case(seed_dir, work_dir, data, "encoder", files, ST_KEYS, "sentence-transformers")


def test_seeds_load_and_run(seed_dir):
    """The seeds themselves are valid: a mutation's refusal is the mutation's doing."""
    for source in (seed_dir / "seed.gguf", seed_dir / "llama", seed_dir / "encoder"):
        exercise(pyengine.load(source))
    for name, _, _ in PACK_SEEDS:
        exercise(pyengine.load(seed_dir / f"{name}.pack"))
    for family in seeds.FAMILY_CONFIGS:
        for source in (seed_dir / family, seed_dir / f"{family}.gguf"):
            model = pyengine.load(source)
            assert model.config.architecture == family
            exercise(model)


def test_a_context_of_two_billion_positions_costs_nothing_at_load(tmp_path):
    """Found by the GGUF fuzzer: the rotary tables were computed for the whole claimed
    context at load (2^31 positions: 512 GB, and a hang). They now grow with the positions
    run."""
    path = seeds.write_gguf_seed(tmp_path / "long.gguf", context=2**31)
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    model = pyengine.load(path)
    model.forward([[1, 2, 3]])
    assert tracemalloc.get_traced_memory()[1] - baseline < ALLOC_FLOOR
    assert model._weights["rope"].cos.shape[0] <= 4096


@pytest.mark.parametrize("family", ["gemma3", "qwen3"])
def test_a_claim_of_four_billion_layers_is_refused_at_once(seed_dir, tmp_path, family):
    """Found by the GGUF fuzzer: Gemma's per-layer windows were listed for every claimed layer
    (block_count 2^32: a hang) before the tensors were counted. They are now computed per
    layer on demand, and the count is refused against the file's tensors."""
    metadata, tensors = seeds.gguf_parts(seed_dir / f"{family}.gguf")
    for m in metadata:
        if m[0].endswith(".block_count"):
            m[1], m[2] = "u64", 2**32
    path = tmp_path / "huge.gguf"
    path.write_bytes(seeds.gguf_bytes(metadata, tensors))
    t0 = time.perf_counter()
    with pytest.raises(LoaderError, match="layers"):
        pyengine.load(path)
    assert time.perf_counter() - t0 < 5
