"""Hypothesis strategies that mutate checkpoint files, and the functions that apply them.

Three kinds of mutation, from blind to structure-aware:
- byte edits: set a byte, overwrite a little-endian word with a boundary value (0, 1, 2^31,
  2^63, 2^64 - 1, ...), insert, delete, truncate; positions biased towards the header, where
  a wrong byte changes what the loader believes rather than a weight's value;
- JSON tree edits (config.json, tokenizer.json, a safetensors header, ...): replace any node by
  a value of any JSON type (NaN and huge ints included), delete it, or add a key the loader
  reads;
- GGUF edits: a metadata value rewritten with another GGUF value type, a key deleted, or a
  tensor info's dimension count, dimensions, type or offset set to a boundary value.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from hypothesis import strategies as st

BOUNDARY_INTS = [
    0,
    1,
    2,
    3,
    7,
    255,
    256,
    2**15,
    2**16 - 1,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**53,
    2**63 - 1,
    2**63,
    2**64 - 1,
    10**12,
]


# ---- byte edits


def byte_edits(size: int, hot: int):
    """A list of edits of a file of `size` bytes whose first `hot` bytes are the header."""
    pos = st.one_of(st.integers(0, max(hot - 1, 0)), st.integers(0, max(size - 1, 0)))
    edit = st.one_of(
        st.tuples(st.just("set"), pos, st.integers(0, 255)),
        st.tuples(st.just("u32"), pos, st.sampled_from(BOUNDARY_INTS)),
        st.tuples(st.just("u64"), pos, st.sampled_from(BOUNDARY_INTS)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("truncate"), pos, st.just(0)),
    )
    return st.lists(edit, min_size=1, max_size=6)


def apply_byte_edits(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, at, value in edits:
        at = min(at, len(out))
        if kind == "set" and at < len(out):
            out[at] = value
        elif kind in ("u32", "u64"):
            width = 4 if kind == "u32" else 8
            out[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
        elif kind == "insert":
            out[at:at] = value
        elif kind == "delete":
            del out[at : at + value]
        elif kind == "truncate":
            del out[at:]
    return bytes(out)


# ---- JSON tree edits

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from(BOUNDARY_INTS + [-1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
    st.sampled_from(["", "llama", "bert", "BF16", "F32", "gelu", "linear", "llama3", "<s>"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Every node's path (keys and indices from the root), parents before children."""
    out = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _nodes(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _nodes(child, path + (index,))
    return out


def json_edits(known_keys: list[str]):
    """A list of (node pick, action, value, key) for `apply_json_edits`."""
    edit = st.tuples(
        st.integers(0, 2**31),
        st.sampled_from(["replace", "replace", "delete", "add"]),
        json_values,
        st.sampled_from(known_keys) if known_keys else st.text(max_size=12),
    )
    return st.lists(edit, min_size=1, max_size=4)


def apply_json_edits(document: Any, edits) -> Any:
    doc = json.loads(json.dumps(document))  # a deep copy
    for pick, action, value, key in edits:
        nodes = _nodes(doc)
        path = nodes[pick % len(nodes)]
        if not path:  # the root
            if action == "replace":
                doc = value
            elif action == "add" and isinstance(doc, dict):
                doc[key] = value
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if action == "replace":
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add":
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[key] = value
            elif isinstance(target, list):
                target.append(value)
    return doc


def dump_json(document: Any) -> bytes:
    # allow_nan writes NaN/Infinity, which Python's json (and some writers) accept
    return json.dumps(document, allow_nan=True).encode()


# ---- GGUF


def gguf_metadata_edits(keys: list[str]):
    """(key, action, GGUF value type, value) edits of a GGUF's metadata."""
    gguf_value = st.one_of(
        st.tuples(
            st.sampled_from(["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"]),
            st.sampled_from(BOUNDARY_INTS + [0, 1, 2, 4, 64]),
        ),
        st.tuples(
            st.sampled_from(["f32", "f64"]),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
        ),
        st.tuples(st.just("bool"), st.booleans()),
        st.tuples(st.just("str"), st.text(max_size=16) | st.sampled_from(["llama", "gpt2", ""])),
        st.tuples(st.just("str_bytes"), st.binary(max_size=8)),  # not UTF-8, as a file may hold
        st.tuples(st.just("arr_i32"), st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6)),
        st.tuples(st.just("arr_str"), st.lists(st.text(max_size=6), max_size=6)),
        st.tuples(st.just("arr_f32"), st.lists(st.floats(width=32), max_size=6)),
    )
    edit = st.tuples(
        st.sampled_from(keys) | st.text(min_size=1, max_size=10),
        st.sampled_from(["set", "set", "set", "delete"]),
        gguf_value,
    )
    return st.lists(edit, min_size=1, max_size=3)


def tensor_info_edits(n_tensors: int):
    field = st.sampled_from(["n_dims", "dim0", "dim1", "type", "offset"])
    value = st.sampled_from(BOUNDARY_INTS + [2, 4, 8, 9, 12, 14, 30, 39])
    return st.lists(st.tuples(st.integers(0, n_tensors - 1), field, value), min_size=1, max_size=3)


def tensor_info_positions(data: bytes, names: list[str]) -> list[dict[str, int]]:
    """Byte positions of each tensor info's fields in a GGUF file (found by the name string,
    which precedes them: u64 length, name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset)."""
    out = []
    for name in names:
        encoded = name.encode()
        at = data.index(struct.pack("<Q", len(encoded)) + encoded) + 8 + len(encoded)
        n_dims = struct.unpack_from("<I", data, at)[0]
        fields = {"n_dims": (at, 4)}
        for i in range(n_dims):
            fields[f"dim{i}"] = (at + 4 + 8 * i, 8)
        fields["type"] = (at + 4 + 8 * n_dims, 4)
        fields["offset"] = (at + 8 + 8 * n_dims, 8)
        out.append(fields)
    return out


def apply_tensor_info_edits(data: bytes, positions, edits) -> bytes:
    out = bytearray(data)
    for index, field, value in edits:
        if field not in positions[index]:
            continue
        at, width = positions[index][field]
        out[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
    return bytes(out)
