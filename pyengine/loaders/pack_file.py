"""The pack file container (`pyengine pack`): a JSON header and aligned blobs, memory-mapped
read-only so every process on a machine shares one copy in the page cache.

Layout (little-endian):
    0   8 bytes  MAGIC
    8   u32      CONTAINER_VERSION
    12  u32      CRC-32 of the H header bytes (an edited or damaged header is refused)
    16  u64      header length H
    24  H bytes  header, UTF-8 JSON (an object), padded with spaces
    ... blobs, each at an offset that is a multiple of 64 (4096 for blobs of 1 MiB or more),
        named in the header as {"offset": o, "nbytes": n}

What the header holds is pyengine.pack's business; this module only frames it, and checks
every blob reference against the file's real size before a view is made, so a truncated or
edited file raises PackFileError naming it instead of reading past the end.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError

MAGIC = b"PYENGPK\x00"
CONTAINER_VERSION = 1
_PREFIX = struct.Struct("<8sIIQ")
_MAX_HEADER = 1 << 30  # a header longer than this is a lie (a real one is a few MB at most)


class PackFileError(CheckpointError):
    """A pack file that cannot be used: not a pack, truncated, from another pack format or
    layout, or packed for CPU features this machine lacks. The message names the file."""


def is_pack_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a file that starts with the pack magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _align(offset: int, nbytes: int) -> int:
    step = 4096 if nbytes >= (1 << 20) else 64
    return -(-offset // step) * step


def write_pack_file(path: str | os.PathLike, header: dict, blobs: list) -> None:
    """Writes `header` and the blobs (each bytes-like, e.g. a uint8 array) to `path`.
    header["blobs"] is set to the blobs' places ({"offset", "nbytes", "crc32"} each, in order,
    the CRC-32 of each blob's bytes for `PackFile.verify`); other
    header entries refer to blobs by their index in that list. Written to a temporary name
    and renamed, so a reader never sees half a file."""
    views = [memoryview(np.ascontiguousarray(b)).cast("B") for b in blobs]
    header = dict(header)
    header["blobs"] = [{"offset": 0, "nbytes": v.nbytes, "crc32": zlib.crc32(v)} for v in views]
    # the header's length depends on the offsets: fix it with room to spare, then place
    places = header["blobs"]
    text = json.dumps(header, separators=(",", ":")).encode()
    room = len(text) + 32 * len(views) + 64
    offset = _PREFIX.size + room
    for place, v in zip(places, views):
        offset = _align(offset, v.nbytes)
        place["offset"] = offset
        offset += v.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    if len(text) > room:
        raise AssertionError("pack header outgrew its room")  # offsets add <= 32 bytes each
    text = text.ljust(room)
    tmp = Path(f"{os.fspath(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(_PREFIX.pack(MAGIC, CONTAINER_VERSION, zlib.crc32(text), room))
            f.write(text)
            for place, v in zip(places, views):
                f.seek(place["offset"])
                f.write(v)
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())  # the data on disk before the name points at it
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class PackFile:
    """A pack file opened read-only: `header` (the JSON object) and `blob(i)`, a read-only
    uint8 view of blob i into the memory map (kept open while any view lives)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                prefix = f.read(_PREFIX.size)
                if len(prefix) < _PREFIX.size or prefix[: len(MAGIC)] != MAGIC:
                    raise self.error("is not a pyengine pack file (no pack magic at its start)")
                _, version, crc, header_len = _PREFIX.unpack(prefix)
                if version != CONTAINER_VERSION:
                    raise self.error(
                        f"has pack container version {version}; this pyengine reads version "
                        f"{CONTAINER_VERSION}: pack the model again with this pyengine"
                    )
                if header_len > min(size - _PREFIX.size, _MAX_HEADER):
                    raise self.error(
                        f"claims a {header_len}-byte header but holds {size} bytes (truncated?)"
                    )
                text = f.read(header_len)
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise PackFileError(f"{self.path}: cannot be read: {exc}") from None
        self.size = size
        if zlib.crc32(text) != crc:
            raise self.error("has a header whose checksum does not match (edited or damaged)")
        try:
            header = json.loads(text.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, absurd nesting
            raise self.error(f"has a header that is not valid JSON: {exc!s:.200}") from None
        if not isinstance(header, dict):
            raise self.error("has a header that is not a JSON object")
        self.header: dict[str, Any] = header
        self._blobs = self._places(header.get("blobs"), _PREFIX.size + header_len)

    def error(self, what: str) -> PackFileError:
        return PackFileError(f"{self.path}: {what}")

    def _places(self, blobs, data_start: int) -> list[tuple[int, int]]:
        if not isinstance(blobs, list):
            raise self.error("header has no blob list")
        places = []
        for i, b in enumerate(blobs):
            o = b.get("offset") if isinstance(b, dict) else None
            n = b.get("nbytes") if isinstance(b, dict) else None
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (o, n)):
                raise self.error(f"blob {i} has no integer offset and nbytes")
            if o < data_start or o % 64 or n < 0 or o + n > self.size:
                raise self.error(
                    f"blob {i} (offset {o}, {n} bytes) lies outside the file's {self.size} "
                    "bytes or off its 64-byte alignment (truncated or edited?)"
                )
            places.append((o, n))
        return places

    @property
    def blob_count(self) -> int:
        return len(self._blobs)

    def blob(self, i: Any) -> np.ndarray:
        """Blob i as a read-only uint8 view (i checked: an index the header gave)."""
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(self._blobs):
            raise self.error(f"refers to blob {i!r}; it has {len(self._blobs)}")
        offset, nbytes = self._blobs[i]
        return np.frombuffer(self._map, dtype=np.uint8, count=nbytes, offset=offset)

    def verify(self) -> None:
        """Reads every blob and checks its CRC-32 (PackFileError naming the first that
        differs): a damaged file found before it runs. Loading does not do this (it would read
        the whole file); `pyengine pack --verify FILE` does."""
        for i, b in enumerate(self.header["blobs"]):
            crc = b.get("crc32")
            if not isinstance(crc, int) or zlib.crc32(self.blob(i)) != crc:
                raise self.error(f"blob {i}: its bytes do not match their CRC-32 (damaged)")

    def will_need(self) -> None:
        """Asks the kernel to start reading the whole file in (returns at once)."""
        advise = getattr(self._map, "madvise", None)
        if advise is not None and hasattr(mmap, "MADV_WILLNEED"):
            advise(mmap.MADV_WILLNEED)
