"""A lazy, read-only mapping of tensor name -> float32 array.

Checkpoints are memory-mapped; converting every tensor to float32 up front would double the
resident memory of a model the builders are about to repack anyway. `TensorMap` knows each
tensor's name, shape, stored type and file from the header alone (so names and shapes can be
validated before any data is read) and converts a tensor the first time it is asked for, then
keeps the result: each tensor is converted once. `release(name)` drops a kept array once the
builder has packed it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import CheckpointError


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor comes from.

    shape: the shape the loaded array will have (HF convention, e.g. [out_features, in_features]).
    dtype: the stored type as the file names it ("F32", "BF16", "Q4_1", ...).
    file: the file holding it.
    load: reads the tensor and returns it as a C-contiguous float32 array of `shape`.
    raw: for a tensor stored in blocks (GGUF Q4_K, ...), reads its stored bytes as uint8
        [rows, row_bytes] (rows in `shape`'s order, e.g. GGUF's Q/K permutation undone by
        reordering whole rows); None for float tensors.
    """

    shape: tuple[int, ...]
    dtype: str
    file: Path
    load: Callable[[], np.ndarray]
    raw: Callable[[], np.ndarray] | None = None


class TensorMap(Mapping[str, np.ndarray]):
    """name -> float32 array, converted on first access and then kept.

    Arrays may be read-only views of the file: treat them as read-only.
    """

    def __init__(self, entries: Mapping[str, TensorEntry]):
        self._entries = dict(entries)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        entry = self._entries[name]  # KeyError for an unknown name, as a Mapping should
        try:
            array = entry.load()
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"cannot read tensor {name!r} ({entry.dtype}) from {entry.file}: {exc}"
            ) from exc
        if array.dtype != np.float32 or array.shape != entry.shape:
            raise CheckpointError(
                f"tensor {name!r} from {entry.file} decoded to {array.dtype} {array.shape}, "
                f"expected float32 {entry.shape}"
            )
        self._cache[name] = array
        return array

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of `name` without reading its data."""
        return self._entries[name].shape

    def stored_dtype(self, name: str) -> str:
        """The type the file stores `name` in ("F32", "BF16", "Q4_1", ...)."""
        return self._entries[name].dtype

    def raw(self, name: str) -> np.ndarray | None:
        """The stored blocks of `name` as uint8 [rows, row_bytes] (not kept), or None for a
        tensor that is not stored in blocks."""
        entry = self._entries[name]
        if entry.raw is None:
            return None
        try:
            return entry.raw()
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"cannot read tensor {name!r} ({entry.dtype}) from {entry.file}: {exc}"
            ) from exc

    def file(self, name: str) -> Path:
        return self._entries[name].file

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: entry.shape for name, entry in self._entries.items()}

    def release(self, name: str) -> None:
        """Forget the converted array of `name` (it is re-read if asked for again)."""
        self._cache.pop(name, None)

    def __repr__(self) -> str:
        return f"TensorMap({len(self)} tensors, {len(self._cache)} loaded)"
