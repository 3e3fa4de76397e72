"""pyengine's weight dtypes in the benchmarks (pyengine.load(dtype=...)): which to run, one
model per dtype, and how a Result names the weights its pyengine row ran with."""

from __future__ import annotations

import pyengine
from pyengine.formats import DTYPE_FORMATS, DTYPES, FORMATS

# float32 keeps the plain workload label, so runs saved before dtypes were measured still
# match in --compare. "auto" runs each tensor as stored: its rows are named by the formats the
# loaded model holds (see workload_label); this suffix is for when no model is at hand.
LABEL_SUFFIX = {
    "auto": " [auto weights]",
    "float32": "",
    "bfloat16": " [bf16 weights]",
    "int8": " [int8 weights]",  # Q8_0
    "q4": " [q4 weights]",  # Q4_0
}
SHORT = {"auto": "auto", "float32": "fp32", "bfloat16": "bf16", "int8": "int8", "q4": "q4"}
# format name -> the dtype that converts every matrix weight to it ("Q8_0" -> "int8")
_DTYPE_OF_FORMAT = {f: d for d, f in DTYPE_FORMATS.items() if f is not None}


def parse_dtypes(text: str) -> list[str]:
    """The dtypes of a --dtypes value ("float32,bfloat16"), in order, without repeats; a
    ValueError naming what is not a dtype pyengine.load takes."""
    dtypes = list(dict.fromkeys(d.strip() for d in text.split(",") if d.strip()))
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ValueError(f"unknown dtype(s) {bad or [text]}; choose from {list(DTYPES)}")
    return dtypes


def weight_formats(model) -> dict[str, int]:
    """Format name -> linear layers of `model` stored in it, most layers first."""
    formats = getattr(model, "weight_formats", None)
    if formats is None:  # EncoderModel has no public property (yet): its packer counts them
        formats = model._packer.formats
    return dict(sorted(formats.items(), key=lambda kv: -kv[1]))


def same_as(model) -> str | None:
    """The dtype a model's weights amount to when every matrix weight has one format some
    dtype converts to ("auto" on a float32 checkpoint is "float32"), else None."""
    formats = weight_formats(model)
    return _DTYPE_OF_FORMAT.get(next(iter(formats))) if len(formats) == 1 else None


def coarsest_format(model):
    """The WeightFormat of `model` with the fewest bits per weight (its largest rounding)."""
    return min((FORMATS[f] for f in weight_formats(model)), key=lambda f: f.bits_per_weight)


def load_models(source, dtypes, models=None, *, progress=None, message="loading") -> dict:
    """{dtype: model} for every dtype in `dtypes`, in that order: the ready ones in `models`
    (checked to hold that dtype's weights), the others loaded from `source`, each announced as
    "<message> (<dtype> weights)". An "auto" model whose weights all have one dtype's format
    stands for that dtype (loaded once); when that dtype is asked for too, "auto" has no row
    of its own (it would measure the same model twice)."""
    ready = dict(models or {})
    out = {}
    for dtype in dtypes:
        if dtype in out:  # an "auto" model already stands for it
            continue
        model = ready.get(dtype)
        if model is None:
            if progress:
                progress(f"{message} ({dtype} weights)")
            model = pyengine.load(source, dtype=dtype)
        elif model.dtype != dtype:
            raise ValueError(f"models[{dtype!r}] holds {model.dtype} weights")
        same = same_as(model) if dtype == "auto" else None
        if same is not None and same in dtypes:
            if progress:
                progress(f"{message}: auto runs every weight as {same}, its row stands for auto")
            out.setdefault(same, model)
        else:
            out[dtype] = model
    return {d: out[d] for d in dtypes if d in out}


def suffix(dtype: str, model=None) -> str:
    """The label suffix of a row of `model` loaded with `dtype`: for "auto", the formats the
    model holds, most layers first (" [Q4_1/Q8_0 weights]"), or the suffix of the dtype they
    amount to."""
    if dtype != "auto" or model is None:
        return LABEL_SUFFIX[dtype]
    same = same_as(model)
    return LABEL_SUFFIX[same] if same else f" [{'/'.join(weight_formats(model))} weights]"


def short_name(dtype: str, model=None) -> str:
    """What a note calls the weights ("bf16", "q4", "Q4_1/Q8_0")."""
    if dtype != "auto" or model is None:
        return SHORT[dtype]
    same = same_as(model)
    return SHORT[same] if same else "/".join(weight_formats(model))


def workload_label(workload: str, dtype: str, model=None) -> str:
    return workload + suffix(dtype, model)


def dtype_notes(dtype: str, peers, model=None) -> list[str]:
    """What a row whose pyengine weights are not float32 compares: its peers (each at its own
    precision) are the same measurement in every dtype's row."""
    from pyengine.bench.peers import PEER_PRECISION

    if not peers or short_name(dtype, model) == "fp32":
        return []
    theirs = ", ".join(f"{p} {PEER_PRECISION.get(p, '')}".rstrip() for p in peers)
    return [
        f"pyengine with {short_name(dtype, model)} weights vs peers at their own precision "
        f"({theirs}), the same peer samples in every dtype's row"
    ]


def bf16_products_on_tiles(rows: int) -> bool:
    """Whether bf16-weight products of `rows` rows run on the AMX tile unit at the active ISA
    level: their roof is the tile unit's measured peak, not the fp32 FMA peak."""
    import numpy as np

    from pyengine.ops import Bf16Linear

    return Bf16Linear(np.zeros((1, 1), np.float32)).rounds_input(rows)
