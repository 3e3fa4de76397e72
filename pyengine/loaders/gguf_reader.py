"""A GGUF file's header read directly: metadata and tensor infos in one pass over the bytes,
tensor data as read-only views of a memory map.

The `gguf` package's GGUFReader builds numpy views for every metadata item (a 49k-token
vocabulary is ~250k views: seconds); reading the header with struct is ~50x faster. Every
count and length is checked against the bytes left in the file before anything is sized from
it, so a hostile header cannot make the reader allocate beyond the file's size.

Layout (little-endian; GGUF v2/v3): "GGUF", version u32, tensor count u64, metadata count
u64; metadata entries (key string, value type u32, value); tensor infos (name, n_dims u32,
dims u64[n_dims] fastest first, type u32, offset u64); padding to `general.alignment` (32);
tensor data at data_start + offset. A string is a u64 byte length and UTF-8 bytes; an array
is an item type u32, a count u64 and the items.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError

_SCALARS = {  # value type -> (struct code, numpy dtype)
    0: ("B", "<u1"),
    1: ("b", "<i1"),
    2: ("H", "<u2"),
    3: ("h", "<i2"),
    4: ("I", "<u4"),
    5: ("i", "<i4"),
    6: ("f", "<f4"),
    7: ("?", "<u1"),
    10: ("Q", "<u8"),
    11: ("q", "<i8"),
    12: ("d", "<f8"),
}
_STRING, _ARRAY = 8, 9
# tensor types whose data is exposed typed rather than as bytes
_TYPED = {0: np.float32, 28: np.float64, 26: np.int32}  # F32, F64, I32


@dataclass
class GGUFTensor:
    """One tensor: name, GGML type, dims (fastest first, as GGUF stores them), data."""

    name: str
    tensor_type: Any  # gguf.GGMLQuantizationType
    shape: np.ndarray
    n_elements: int
    data: np.ndarray  # typed (F32/F64/I32) or uint8 rows of stored blocks [..., row_bytes]


class _Cursor:
    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def fail(self, what: str):
        raise CheckpointError(
            f"{self.path}: not a readable GGUF file (truncated?): {what} at byte {self.pos}"
        )

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            self.fail(f"{n} bytes needed, {len(self.buf) - start} left")
        self.pos = start + n
        return start

    def scalar(self, code: str):
        size = struct.calcsize("<" + code)
        return struct.unpack_from("<" + code, self.buf, self.take(size))[0]

    def string(self) -> str:
        n = self.scalar("Q")
        start = self.take(n)
        try:
            return bytes(self.buf[start : start + n]).decode("utf-8")
        except UnicodeDecodeError as exc:
            self.fail(f"a string that is not UTF-8 ({exc.reason})")

    def value(self, vtype: int):
        if vtype in _SCALARS:
            v = self.scalar(_SCALARS[vtype][0])
            return bool(v) if vtype == 7 else v
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item, count = self.scalar("I"), self.scalar("Q")
            if item in _SCALARS:
                dtype = np.dtype(_SCALARS[item][1])
                start = self.take(count * dtype.itemsize)
                out = np.frombuffer(self.buf, dtype, count, start).tolist()
                return [bool(v) for v in out] if item == 7 else out
            if count > len(self.buf) - self.pos:  # every item takes at least one byte
                self.fail(f"an array of {count} items longer than the file")
            return [self.value(item) for _ in range(count)]
        self.fail(f"unknown metadata value type {vtype}")


def read_gguf_file(path: str | Path) -> tuple[dict[str, Any], list[GGUFTensor]]:
    """(metadata key -> value, tensors) of a GGUF file; CheckpointError naming the file for
    anything malformed."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    path = Path(path)
    try:
        with open(path, "rb") as f:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: an empty file cannot be mapped
        raise CheckpointError(f"{path}: not a readable GGUF file: {exc}") from exc
    cur = _Cursor(buf, path)
    if len(buf) < 4 or buf[:4] != b"GGUF":
        cur.fail("no GGUF magic")
    cur.take(4)
    version = cur.scalar("I")
    if version not in (2, 3):
        kind = "a big-endian file" if version > 0xFFFF else f"version {version}"
        raise CheckpointError(f"{path}: GGUF {kind} is not supported (little-endian v2/v3 are)")
    n_tensors, n_kv = cur.scalar("Q"), cur.scalar("Q")
    if n_tensors > len(buf) or n_kv > len(buf):
        cur.fail(f"{n_tensors} tensors and {n_kv} metadata entries claimed")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.scalar("I"))
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("I")
        if n_dims > 8:
            cur.fail(f"tensor {name!r} with {n_dims} dimensions")
        dims = [cur.scalar("Q") for _ in range(n_dims)]
        infos.append((name, dims, cur.scalar("I"), cur.scalar("Q")))
    align = metadata.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise CheckpointError(f"{path}: general.alignment {align!r} is not a power of two")
    data_start = -(-cur.pos // align) * align

    tensors = []
    for name, dims, type_id, offset in infos:
        try:
            kind = GGMLQuantizationType(type_id)
        except ValueError:
            raise CheckpointError(
                f"{path}: tensor {name!r} has unknown type id {type_id}"
            ) from None
        block, type_size = GGML_QUANT_SIZES[kind]
        n = int(np.prod(dims, dtype=object)) if dims else 1
        row = dims[0] if dims else 1
        if row % block:
            raise CheckpointError(
                f"{path}: tensor {name!r} rows of {row} values are not whole {kind.name} blocks"
            )
        nbytes = n // block * type_size
        begin = data_start + offset
        if offset % align or begin + nbytes > len(buf):
            raise CheckpointError(
                f"{path}: not a readable GGUF file (truncated?): tensor {name!r} ({nbytes} "
                f"bytes at offset {offset}) lies past the end of the file or off its alignment"
            )
        if type_id in _TYPED:
            data = np.frombuffer(buf, _TYPED[type_id], n, begin).reshape(dims[::-1] or [1])
        else:
            data = np.frombuffer(buf, np.uint8, nbytes, begin)
            data = data.reshape([*dims[:0:-1], row // block * type_size])
        tensors.append(GGUFTensor(name, kind, np.array(dims, np.uint64), n, data))
    return metadata, tensors
