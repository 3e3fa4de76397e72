"""Whether a graph's weights fit its buffers: each linear layer's [out, in] the widths of the
buffers it reads and writes, each norm's weight the width it normalizes, each embedding table
the width it fills. Model code makes graphs that fit by construction; a pack file's weights
come from a file, so the pack loader checks them before anything runs (a layer of another
shape would otherwise fail at the first call, or an array of the wrong type be read)."""

from __future__ import annotations

import numpy as np

from pyengine import _C

_LAYERS = (_C.Linear, _C.Bf16Linear, _C.QuantLinear)


def _vector(w, width: int) -> bool:
    return isinstance(w, np.ndarray) and w.dtype == np.float32 and w.shape == (width,)


def misfits(graph) -> list[str]:
    """One line per op whose weights do not fit (empty when all do)."""
    problems = []
    width = {name: b.width for name, b in graph.buffers.items()}
    for op in graph.ops:
        a = op.attrs
        out_w = width[op.output]
        in_w = width[op.inputs[0]] if op.inputs else None
        bad = None
        if op.kind == "linear":
            lin = a.get("linear")
            if not isinstance(lin, _LAYERS):
                bad = f"a {type(lin).__name__} where a linear layer belongs"
            elif (lin.in_features, lin.out_features) != (in_w, out_w):
                bad = f"[out {lin.out_features}, in {lin.in_features}] for widths {in_w} -> {out_w}"
        elif op.kind == "rms_norm":
            n = out_w // a["heads"] if a.get("heads") else out_w
            if not _vector(a.get("weight"), n):
                bad = f"weight is not float32 [{n}]"
        elif op.kind == "layer_norm":
            b = a.get("bias")
            if not _vector(a.get("weight"), out_w) or not (b is None or _vector(b, out_w)):
                bad = f"weight or bias is not float32 [{out_w}]"
        elif op.kind == "embed":
            t = a.get("table")
            fits = (isinstance(t, _C.QuantLinear) and t.in_features == out_w) or (
                isinstance(t, np.ndarray) and t.dtype == np.float32 and t.ndim == 2
                and t.shape[1] == out_w and t.shape[0] > 0
            )  # fmt: skip
            if not fits:
                bad = f"table does not fill width {out_w}"
        if bad:
            problems.append(f"op {op.name} ({op.kind}): {bad}")
    return problems
