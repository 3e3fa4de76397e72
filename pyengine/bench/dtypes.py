"""pyengine's weight dtypes in the benchmarks (pyengine.load(dtype=...)): which to run, one
model per dtype, and how a Result names the dtype its pyengine row ran with."""

from __future__ import annotations

import pyengine
from pyengine.api import DTYPES

# float32 keeps the plain workload label, so runs saved before dtypes were measured still
# match in --compare.
LABEL_SUFFIX = {"float32": "", "bfloat16": " [bf16 weights]"}
SHORT = {"float32": "fp32", "bfloat16": "bf16"}


def parse_dtypes(text: str) -> list[str]:
    """The dtypes of a --dtypes value ("float32,bfloat16"), in order, without repeats; a
    ValueError naming what is not a dtype pyengine.load takes."""
    dtypes = list(dict.fromkeys(d.strip() for d in text.split(",") if d.strip()))
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ValueError(f"unknown dtype(s) {bad or [text]}; choose from {list(DTYPES)}")
    return dtypes


def load_models(source, dtypes, models=None, *, progress=None, message="loading") -> dict:
    """{dtype: model} for every dtype in `dtypes`, in that order: the ready ones in `models`
    (checked to hold that dtype's weights), the others loaded from `source`, each announced as
    "<message> (<dtype> weights)"."""
    ready = dict(models or {})
    out = {}
    for dtype in dtypes:
        model = ready.get(dtype)
        if model is None:
            if progress:
                progress(f"{message} ({dtype} weights)")
            model = pyengine.load(source, dtype=dtype)
        elif model.dtype != dtype:
            raise ValueError(f"models[{dtype!r}] holds {model.dtype} weights")
        out[dtype] = model
    return out


def workload_label(workload: str, dtype: str) -> str:
    return workload + LABEL_SUFFIX[dtype]


def dtype_notes(dtype: str, peers) -> list[str]:
    """What a row whose pyengine weights are not float32 compares: its peers are the float32
    row's measurement, reused."""
    if dtype == "float32" or not peers:
        return []
    return [
        f"pyengine with {SHORT[dtype]} weights vs peers in float32 "
        "(the same peer samples as the float32 row)"
    ]


def bf16_products_on_tiles(rows: int) -> bool:
    """Whether bf16-weight products of `rows` rows run on the AMX tile unit at the active ISA
    level: their roof is the tile unit's measured peak, not the fp32 FMA peak."""
    import numpy as np

    from pyengine.ops import Bf16Linear

    return Bf16Linear(np.zeros((1, 1), np.float32)).rounds_input(rows)
