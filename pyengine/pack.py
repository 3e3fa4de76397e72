"""Pack files: a model's weights packed once, ready to run, shared by every process.

`pack(source, out, dtype)` loads a model as `pyengine.load` does, recording each weight its
family's builder asks for, and writes one file (pyengine.loaders.pack_file) holding:
- every native layer's packed bytes, in the layout of this CPU's ISA level (fp32 panels,
  bf16 panels, quantized blocks interleaved for the level's dot kernels), and its bias;
- every float32 array the model keeps (embedding tables, norm weights);
- what makes the config again (config.json's object or the GGUF metadata), the tokenizer
  (tokenizer.json), the extras (chat template, special tokens, pooling);
- a header: pack format version, a digest of the code that made the weights (`code_digest`),
  the layout string of the level (`_C.packed_layout`), the level and the CPU features it
  needs, the dtype, the source file's SHA-256; each blob's CRC-32 (`verify`).

`pyengine.load(FILE)` memory-maps the file read-only and runs the layers over the mapping:
nothing is repacked or copied, so N processes on one machine share one copy of the weights
in the page cache and start in the time it takes to build the graph. A file from another pack
format, other pyengine code or another layout, packed for kernels this CPU cannot run, or whose
weights do not fit the model its header describes raises PackFileError naming the file and
the mismatch.
"""

from __future__ import annotations

import functools
import hashlib
import time
import warnings
from pathlib import Path

import numpy as np

from pyengine import _C
from pyengine.formats import check_dtype
from pyengine.loaders import load_weights
from pyengine.loaders.config import config_from_inputs
from pyengine.loaders.pack_extras import KEPT, checked_extras
from pyengine.loaders.pack_file import PackFile, PackFileError, write_pack_file
from pyengine.loaders.safetensors_folder import probe_tokenizer
from pyengine.runtime.heap import return_freed_heap
from pyengine.runtime.weight_fit import misfits

PACK_FORMAT = 1  # the header's schema ("pyengine_pack"); bump when its meaning changes
_LEVELS = ("generic", "avx2", "avx512", "amx")


@functools.cache
def code_digest() -> str:
    """SHA-256 (16 hex digits) of the Python code that turns a checkpoint into the weights a
    pack file stores (the loaders' conversions, the families' packing calls, the formats): a
    file packed by other code is refused (its weights may have been made differently), and
    packing again takes seconds."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(
        [root / "formats.py", *root.glob("loaders/*.py"), *root.glob("models/*.py")]
    ):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def source_digest(path: Path) -> dict:
    """SHA-256 and size of a .gguf file, or of a folder's config.json and weight files."""
    path = Path(path)
    files = (
        [path]
        if path.is_file()
        else sorted(
            p for p in path.iterdir() if p.name == "config.json" or p.suffix == ".safetensors"
        )
    )
    h, size = hashlib.sha256(), 0
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
                size += len(chunk)
    return {"path": str(path), "sha256": h.hexdigest(), "bytes": size}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot write a {type(obj).__name__} into a pack header")


def _model(config, tokenizer, extras, dtype: str, packer):
    if config.is_encoder:
        from pyengine.models.encoder import EncoderModel

        return EncoderModel(config, None, tokenizer, extras, dtype=dtype, packer=packer)
    from pyengine.models.decoder import DecoderModel

    return DecoderModel(config, None, tokenizer, extras, dtype=dtype, packer=packer)


def pack(source, out, dtype: str = "auto", threads: int | None = None) -> dict:
    """Packs `source` (what pyengine.load takes) with `dtype` into the file `out`, for this
    CPU's ISA level ($PYENGINE_ISA forces another the CPU supports). Returns a summary:
    path, bytes, seconds, isa, layers, arrays, source (path, sha256, bytes)."""
    from pyengine.models.common import WeightPacker
    from pyengine.models.replay_packer import encode_log

    check_dtype(dtype)
    if threads is not None:
        _C.set_num_threads(int(threads))
    start = time.perf_counter()
    config, tensors, tokenizer, extras = load_weights(source)
    packer = WeightPacker(tensors, dtype=dtype, record=True)
    model = _model(config, tokenizer, extras, dtype, packer)
    entries, layers, arrays, blobs = encode_log(packer.log)
    isas = {spec["isa"] for spec in layers} or {_C.isa_level()}
    if len(isas) != 1:
        raise ValueError(f"layers packed at several ISA levels {sorted(isas)}; cannot pack")
    isa = isas.pop()
    saved = {k: extras[k] for k in KEPT if k in extras}
    header = {
        "pyengine_pack": PACK_FORMAT,
        "pyengine_version": _version(),
        "code": code_digest(),
        "isa": isa,
        "cpu_features": [f for f in _C.isa_level_requirements(isa).split(", ") if f],
        "layout": _C.packed_layout(isa),
        "dtype": dtype,
        "kind": "encoder" if config.is_encoder else "decoder",
        "architecture": config.architecture,
        "source": source_digest(extras["source"]),
        "config_inputs": _jsonable(extras["config_inputs"]),
        "tokenizer": None if tokenizer is None else tokenizer.to_str(),
        "extras": _jsonable(saved),
        "log": entries,
        "layers": layers,
        "arrays": arrays,
    }
    write_pack_file(out, header, blobs)
    del model
    return {
        "path": str(out),
        "bytes": Path(out).stat().st_size,
        "seconds": time.perf_counter() - start,
        "isa": isa,
        "layers": len(layers),
        "arrays": len(arrays),
        "source": header["source"],
    }


def _version() -> str:
    from pyengine import __version__

    return __version__


def load_pack(path, dtype: str = "auto", *, debug: bool = False):
    """The model a pack file holds (see the module's docstring). dtype: "auto" or the dtype it
    was packed with."""
    check_dtype(dtype)
    pf = PackFile(path)
    h = pf.header
    version = h.get("pyengine_pack")
    if type(version) is not int or version != PACK_FORMAT:
        raise pf.error(
            f"has pack format {version!r:.40}; this pyengine reads {PACK_FORMAT}: "
            "pack the model again with this pyengine"
        )
    if h.get("code") != code_digest():
        raise pf.error(
            f"was packed by other pyengine code ({h.get('code')!r:.40}; this is "
            f"{code_digest()!r}, pyengine {_version()}): pack the model again with this pyengine"
        )
    isa = h.get("isa")
    if isa not in _LEVELS:
        raise pf.error(f"names ISA level {isa!r:.40}; known: {', '.join(_LEVELS)}")
    try:
        _C.choose_isa_level(_C.cpu_features(), isa)
    except (ValueError, RuntimeError) as exc:  # unknown level / level the CPU lacks
        raise pf.error(
            f"was packed for the {isa} kernels, which this CPU cannot run ({exc}); pack the "
            "model on this machine"
        ) from None
    layout = _C.packed_layout(isa)
    if h.get("layout") != layout:
        raise pf.error(
            f"holds weights in layout {h.get('layout')!r}; this pyengine's {isa} kernels read "
            f"{layout!r}: pack the model again with this pyengine"
        )
    try:
        if not isinstance(h.get("dtype"), str):
            raise ValueError
        check_dtype(h.get("dtype"))
    except ValueError:
        raise pf.error(
            f"names dtype {h.get('dtype')!r}, which this pyengine does not know"
        ) from None
    if dtype not in ("auto", h.get("dtype")):
        raise ValueError(
            f"{pf.path} was packed with dtype {h.get('dtype')!r}; load it with dtype='auto' "
            f"or pack the model again with dtype={dtype!r}"
        )
    if debug:
        raise ValueError(
            f"{pf.path}: debug mode compares every op with float32 references that a pack file "
            "does not keep; load the source model to debug"
        )
    if isa != _C.isa_level():
        warnings.warn(
            f"{pf.path} was packed for the {isa} kernels; this process runs {_C.isa_level()}: "
            "pack the model on this machine for its own",
            stacklevel=3,
        )
    config = config_from_inputs(h.get("config_inputs"), str(pf.path))
    tokenizer = None
    if h.get("tokenizer") is not None:
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_str(h["tokenizer"])
        except Exception as exc:  # tokenizers raises its own Exception types
            raise pf.error(f"holds a tokenizer that cannot be read: {exc}") from None
        probe_tokenizer(tokenizer, str(pf.path))
        return_freed_heap()  # the JSON parse leaves ~25 MB free but kept (SmolLM2)
    extras = checked_extras(h.get("extras"), str(pf.path))
    source = h.get("source") if isinstance(h.get("source"), dict) else {}
    extras.update(source=pf.path, packed_from=source.get("path"))
    from pyengine.models.replay_packer import ReplayPacker

    pf.will_need()
    packer = ReplayPacker(pf, str(h.get("dtype")))
    try:
        model = _model(config, tokenizer, extras, str(h.get("dtype")), packer)
        graph = model._graph if config.is_encoder else model._graph("all")
    except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:  # a builder's
        raise pf.error(f"holds weights its model cannot be built from: {exc!r:.200}") from None
    problems = misfits(graph)
    if problems:
        raise pf.error(
            f"holds weights that do not fit its model ({len(problems)} ops), e.g. {problems[0]}"
        )
    return model


def verify(path) -> None:
    """Checks every blob of a pack file against its CRC-32 (PackFileError if one differs)."""
    PackFile(path).verify()


__all__ = ["PACK_FORMAT", "PackFileError", "code_digest", "load_pack", "pack", "source_digest",
           "verify"]  # fmt: skip
