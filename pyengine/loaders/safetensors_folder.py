"""Hugging Face model folders: config.json + safetensors weights.

A folder holds either `model.safetensors`, or shards `model-0000i-of-0000n.safetensors` listed
by `model.safetensors.index.json` (its "weight_map": tensor name -> shard file).

A safetensors file is:
    [8 bytes: header length N, little-endian u64]
    [N bytes: JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {}}]
    [data: each tensor's bytes at data_offsets, relative to the end of the header]

`read_header` parses and checks the header ourselves before the `safetensors` package maps the
file, so that a truncated file, offsets that disagree with shape and dtype, overlapping data
or an unknown dtype are reported with the tensor and file name. Data is then memory-mapped:
F32/F16/F64 through `safetensors.safe_open(framework="numpy")`; BF16, which numpy lacks (the
numpy framework raises TypeError on it), straight from the file: each value is the high half of
a float32, so u16 << 16 reinterpreted as float32 is exact.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .config import ModelConfig, load_hf_config
from .errors import CheckpointError, UnsupportedModelError
from .schema import canonical_name, check_tensors, is_buffer
from .tensors import TensorEntry, TensorMap
from .typed_keys import TypedKeys

# bytes per element of every dtype the safetensors format defines
DTYPE_SIZES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}
# the ones we convert to float32
FLOAT_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None}
MAX_HEADER_BYTES = 100_000_000  # the safetensors package's own limit
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
SHARD_PATTERN = re.compile(r"^model-(\d+)-of-(\d+)\.safetensors$")


@dataclass(frozen=True)
class HeaderEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets relative to data_start
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    data_start: int  # absolute offset of the data section: 8 + header length
    tensors: dict[str, HeaderEntry]
    metadata: dict[str, str]


def read_header(path: str | Path) -> SafetensorsHeader:
    """Parse and validate the header of one .safetensors file.

    Checks: the file holds the 8-byte length and the whole header; the header is a JSON object;
    every tensor has a known dtype, a shape of non-negative ints and offsets whose length equals
    prod(shape) * dtype size; tensors' data do not overlap, leave no gap and end exactly at the
    end of the file. Raises CheckpointError naming the file (and tensor) otherwise.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"{path}: truncated: {size} bytes, too short for the 8-byte header length"
                )
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"{path}: header length {header_len} exceeds {MAX_HEADER_BYTES} bytes: "
                    "not a safetensors file or corrupt"
                )
            if 8 + header_len > size:
                raise CheckpointError(
                    f"{path}: truncated: header says {header_len} bytes of JSON but the file "
                    f"has only {size - 8} after the length"
                )
            header_bytes = f.read(header_len)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc}") from exc
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: header is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: __metadata__ is not a JSON object")
    tensors = {name: _header_entry(path, name, info) for name, info in header.items()}

    data_start = 8 + header_len
    data_len = size - data_start
    position, previous = 0, None
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin < position:
            raise CheckpointError(
                f"{path}: tensor {name!r} data [{entry.begin}, {entry.end}) overlaps tensor "
                f"{previous!r} which ends at byte {position}"
            )
        if entry.begin > position:
            raise CheckpointError(
                f"{path}: tensor {name!r} data starts at byte {entry.begin} but the previous "
                f"data ends at {position}: offsets must be contiguous"
            )
        if entry.end > data_len:
            raise CheckpointError(
                f"{path}: truncated: tensor {name!r} data [{entry.begin}, {entry.end}) runs "
                f"past the end of the file (data section is {data_len} bytes)"
            )
        position, previous = entry.end, name
    if position != data_len:
        raise CheckpointError(
            f"{path}: {data_len - position} bytes after the last tensor's data: header and "
            "file disagree"
        )
    return SafetensorsHeader(path=path, data_start=data_start, tensors=tensors, metadata=metadata)


def _header_entry(path: Path, name: str, info: Any) -> HeaderEntry:
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{where}: header entry is not an object")
    dtype = info.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise CheckpointError(
            f"{where}: unknown dtype {dtype!r}; safetensors dtypes are {', '.join(DTYPE_SIZES)}"
        )
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise CheckpointError(f"{where}: shape {shape!r} is not a list of non-negative ints")
    offsets = info.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        or offsets[1] < offsets[0]
    ):
        raise CheckpointError(f"{where}: data_offsets {offsets!r} are not [begin, end]")
    begin, end = offsets
    expected = math.prod(shape) * DTYPE_SIZES[dtype]  # Python ints: no overflow
    if end - begin != expected:
        raise CheckpointError(
            f"{where}: data_offsets [{begin}, {end}) span {end - begin} bytes, but shape "
            f"{shape} of {dtype} needs {expected}"
        )
    return HeaderEntry(dtype=dtype, shape=tuple(shape), begin=begin, end=end)


def weight_files(folder: str | Path) -> tuple[list[Path], dict[str, str] | None]:
    """The safetensors files of a folder, and the index's weight_map (None without index).

    Prefers model.safetensors; else the shards named by model.safetensors.index.json; else
    shards found by name (model-0000i-of-0000n.safetensors), which must be complete.
    """
    folder = Path(folder)
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE], None
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{index_path}: not valid JSON: {exc}") from None
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise CheckpointError(f"{index_path}: no 'weight_map' object of name -> file")
        files = []
        for file_name in sorted(set(weight_map.values())):
            path = folder / file_name
            if os.path.basename(file_name) != file_name or not path.is_file():
                raise CheckpointError(
                    f"{index_path} lists shard {file_name!r}, which is not a file in {folder}"
                )
            files.append(path)
        return files, weight_map
    shards = sorted(p for p in folder.iterdir() if SHARD_PATTERN.match(p.name))
    if shards:
        totals = {int(SHARD_PATTERN.match(p.name).group(2)) for p in shards}
        numbers = {int(SHARD_PATTERN.match(p.name).group(1)) for p in shards}
        total = max(totals)
        if len(totals) != 1 or numbers != set(range(1, total + 1)):
            raise CheckpointError(
                f"{folder}: incomplete shard set {[p.name for p in shards]} and no {INDEX_FILE}"
            )
        return shards, None
    others = sorted(p.name for p in folder.glob("*.bin")) + sorted(
        p.name for p in folder.glob("*.safetensors")
    )
    hint = f" (found {', '.join(others)}; only safetensors weights are supported)" if others else ""
    raise CheckpointError(f"{folder}: no {SINGLE_FILE} and no {INDEX_FILE}{hint}")


class _SafeOpenHandle:
    """One `safe_open` per file, opened on first use and shared by its tensors."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = None

    def get(self, name: str) -> np.ndarray:
        from safetensors import SafetensorError, safe_open

        try:
            if self._handle is None:
                self._handle = safe_open(str(self.path), framework="numpy")
            return self._handle.get_tensor(name)
        except SafetensorError as exc:
            raise CheckpointError(f"{self.path}: tensor {name!r}: {exc}") from exc


def _load_float(
    handle: _SafeOpenHandle, header: SafetensorsHeader, name: str, entry: HeaderEntry
) -> np.ndarray:
    if entry.dtype == "BF16":
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count == 0:
            return np.zeros(entry.shape, dtype=np.float32)
        raw = np.memmap(
            header.path,
            dtype="<u2",
            mode="r",
            offset=header.data_start + entry.begin,
            shape=(count,),
        )
        # bf16 is the top 16 bits of an IEEE float32
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry.shape)
    array = handle.get(name)
    return np.ascontiguousarray(array, dtype=np.float32).reshape(entry.shape)


def open_safetensors_files(
    files: list[Path], config: ModelConfig, weight_map: dict[str, str] | None = None
) -> TensorMap:
    """A TensorMap over `files`, names in our convention (see `schema`), buffers dropped.

    Validates every header up front. Raises CheckpointError for a tensor found in two files,
    or listed by the index in a file that does not hold it; UnsupportedModelError for a
    non-float weight.
    """
    entries: dict[str, TensorEntry] = {}
    origin: dict[str, Path] = {}
    seen_raw: dict[str, Path] = {}
    for path in files:
        header = read_header(path)
        handle = _SafeOpenHandle(path)
        for raw_name, entry in header.tensors.items():
            if raw_name in seen_raw:
                raise CheckpointError(
                    f"tensor {raw_name!r} appears in both {seen_raw[raw_name]} and {path}"
                )
            seen_raw[raw_name] = path
            if is_buffer(config, raw_name):
                continue
            if entry.dtype not in FLOAT_DTYPES:
                raise UnsupportedModelError(
                    f"{path}: tensor {raw_name!r} has dtype {entry.dtype}; weights must be "
                    f"one of {', '.join(FLOAT_DTYPES)}"
                )
            name = canonical_name(config, raw_name)
            if name in entries:
                raise CheckpointError(
                    f"tensors {name!r} in {origin[name]} and {raw_name!r} in {path} are the "
                    "same weight under two names"
                )
            origin[name] = path
            entries[name] = TensorEntry(
                shape=entry.shape,
                dtype=entry.dtype,
                file=path,
                load=partial(_load_float, handle, header, raw_name, entry),
            )
    if weight_map is not None:
        for raw_name, file_name in weight_map.items():
            holder = seen_raw.get(raw_name)
            if holder is None or holder.name != file_name:
                found = f"; it is in {holder}" if holder else ""
                raise CheckpointError(
                    f"{INDEX_FILE} says tensor {raw_name!r} is in {file_name}, but that file "
                    f"does not hold it{found}"
                )
    return TensorMap(entries)


def load_safetensors_folder(
    folder: str | Path, check: bool = True
) -> tuple[ModelConfig, TensorMap]:
    """config.json and the weights of a Hugging Face folder.

    Returns (config, tensors): tensors is a lazy TensorMap of float32 arrays in our naming
    (see `schema`). With check=True (default) every required tensor's presence and shape is
    verified against the config from the headers, before any data is read.
    """
    folder = Path(folder)
    config = load_hf_config(folder)
    files, weight_map = weight_files(folder)
    tensors = open_safetensors_files(files, config, weight_map)
    if check:
        check_tensors(config, tensors, source=str(folder))
    return config, tensors


# --------------------------------------------------------------------------------------------
# tokenizer and the other files of a folder


def load_folder_tokenizer(folder: str | Path):
    """`tokenizers.Tokenizer` from folder/tokenizer.json, or None if the folder has none.

    Padding and truncation saved in tokenizer.json are switched off (all-MiniLM-L6-v2's file
    pads every input to 128 tokens): the engine decides lengths; see extras["max_seq_length"].
    """
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad files
        raise CheckpointError(f"{path}: cannot build a tokenizer: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()
    probe_tokenizer(tokenizer, str(path))
    return tokenizer


def probe_tokenizer(tokenizer, source: str) -> None:
    """Encodes and decodes a probe text once, at load. A tokenizer.json can load and still
    fail at its first encode: a post-processor template naming a special token the file does
    not define makes `tokenizers` panic (a PanicException, which is not an Exception, so it
    would get past the serving engine's error handling). Found here, it is a CheckpointError
    naming the file."""
    try:
        tokenizer.decode(tokenizer.encode("Hello, world! 123").ids)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - pyo3's PanicException derives from it
        raise CheckpointError(
            f"{source}: its tokenizer fails on text ({type(exc).__name__}: {exc})"
        ) from None


def _read_json(path: Path, kind: type = dict) -> Any:
    """The JSON value of `path`, which must be a `kind` (object or list)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(value, kind):
        what = "an object" if kind is dict else "a list"
        raise CheckpointError(f"{path}: expected a JSON {what}, found {type(value).__name__}")
    return value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc}") from exc


def check_tokenizer_config(tokenizer_config: Any, source: str) -> dict:
    """tokenizer_config.json's object with the settings generation reads checked for type
    (CheckpointError naming `source` otherwise)."""
    if not isinstance(tokenizer_config, dict):
        raise CheckpointError(f"{source} does not hold a JSON object")
    keys = TypedKeys(tokenizer_config, source)
    keys.string("chat_template", None)
    for role in ("bos_token", "eos_token"):  # a string, or an AddedToken object
        token = tokenizer_config.get(role)
        if isinstance(token, dict):
            TypedKeys(token, f"{source}: {role}").string("content", None)
        elif token is not None:
            keys.string(role)
    return tokenizer_config


def folder_extras(folder: str | Path) -> dict[str, Any]:
    """What else a folder says that the engine may need (see `load_weights` for the keys).

    Each value has the type `load_weights` documents, or CheckpointError names the file."""
    folder = Path(folder)
    extras: dict[str, Any] = {"format": "safetensors", "source": folder}
    # what config_from_inputs needs to make the config again (a pack file keeps it)
    extras["config_inputs"] = {"kind": "hf", "config": _read_json(folder / "config.json")}
    tokenizer_config = {}
    tc_path = folder / "tokenizer_config.json"
    if tc_path.is_file():
        tokenizer_config = check_tokenizer_config(_read_json(tc_path), str(tc_path))
    extras["tokenizer_config"] = tokenizer_config
    template = tokenizer_config.get("chat_template")
    if (folder / "chat_template.jinja").is_file():
        template = _read_text(folder / "chat_template.jinja")
    extras["chat_template"] = template
    generation_config = None
    if (folder / "generation_config.json").is_file():
        path = folder / "generation_config.json"
        generation_config = _read_json(path)
        TypedKeys(generation_config, str(path)).ids("eos_token_id")
    extras["generation_config"] = generation_config
    max_len = tokenizer_config.get("model_max_length")
    if isinstance(max_len, int) and 0 < max_len < 1_000_000_000:  # HF writes 1e30: "no limit"
        extras["max_seq_length"] = max_len
    if (folder / "modules.json").is_file():
        extras["sentence_transformers"] = _sentence_transformers(folder)
        limit = extras["sentence_transformers"].get("max_seq_length")
        if limit is not None:
            extras["max_seq_length"] = limit
    return extras


def _sentence_transformers(folder: Path) -> dict[str, Any]:
    """Pooling and normalization of a sentence-transformers folder (modules.json).

    modules: the module types in order; a builder must refuse types it does not implement
    (e.g. a Dense projection) rather than return wrong embeddings.
    """
    modules_path = folder / "modules.json"
    modules = _read_json(modules_path, list)
    info: dict[str, Any] = {
        "modules": [],
        "pooling": None,
        "normalize": False,
        "max_seq_length": None,
    }
    for index, module in enumerate(modules):
        if not isinstance(module, dict):
            raise CheckpointError(f"{modules_path}: entry {index} is not an object")
        keys = TypedKeys(module, f"{modules_path}: entry {index}")
        kind, sub = keys.string("type", ""), keys.string("path", "")
        info["modules"].append(kind)
        module_dir = (folder / sub).resolve()
        if not module_dir.is_relative_to(folder.resolve()):
            raise CheckpointError(f"{modules_path}: module path {sub!r} leaves the folder")
        if kind.endswith(".Pooling"):
            pooling = _read_json(module_dir / "config.json")
            prefix = "pooling_mode_"
            modes = [k[len(prefix) :] for k, v in pooling.items() if k.startswith(prefix) and v]
            info["pooling"] = {"modes": modes, "config": pooling}
        elif kind.endswith(".Normalize"):
            info["normalize"] = True
        elif kind.endswith(".Transformer") and (folder / "sentence_bert_config.json").is_file():
            path = folder / "sentence_bert_config.json"
            bert_cfg = TypedKeys(_read_json(path), str(path))
            limit = bert_cfg.get("max_seq_length")
            info["max_seq_length"] = None if limit is None else bert_cfg.positive("max_seq_length")
            info["do_lower_case"] = bert_cfg.flag("do_lower_case", False)
    return info
