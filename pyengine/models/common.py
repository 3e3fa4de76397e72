"""What every model builder shares: weight packing and the rotary tables."""

from __future__ import annotations

import numpy as np

from pyengine.ops import Bf16Linear, Linear
from pyengine.runtime.graph import Graph
from pyengine.runtime.reference import round_bf16

# load(dtype=...) -> the native layer class that stores weights that way
LINEAR_BY_DTYPE = {"float32": Linear, "bfloat16": Bf16Linear}


class WeightPacker:
    """Packs checkpoint tensors into native Linear layers (float32 or bfloat16 weights), once,
    and drops the float32 copy the loader kept (the packed layout is all the kernels read)."""

    def __init__(self, tensors, dtype: str = "float32", keep_reference: bool = False):
        self.tensors = tensors
        self.dtype = dtype
        self._linear_class = LINEAR_BY_DTYPE[dtype]
        self.keep_reference = keep_reference
        # debug mode: id(Linear) -> (weight, bias) as unpacked float32, for the numpy reference
        self.reference_by_linear: dict[int, tuple] = {}

    def array(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.tensors[name], dtype=np.float32)

    def linear(self, weight: np.ndarray, bias: np.ndarray | None = None) -> Linear:
        lin = self._linear_class(weight, None if bias is None else np.ascontiguousarray(bias))
        if self.keep_reference:
            ref_bias = None if bias is None else np.array(bias)
            ref_weight = round_bf16(weight) if self.dtype == "bfloat16" else np.array(weight)
            self.reference_by_linear[id(lin)] = (ref_weight, ref_bias)
        return lin

    def linear_from(self, prefix: str, has_bias: bool) -> Linear:
        weight = self.tensors[prefix + ".weight"]
        bias = self.tensors[prefix + ".bias"] if has_bias else None
        lin = self.linear(weight, bias)
        self.release(prefix + ".weight", prefix + ".bias")
        return lin

    def release(self, *names: str) -> None:
        """Drops the loader's float32 copies (a plain dict of arrays loses the entries)."""
        release = getattr(self.tensors, "release", None) or self.tensors.pop
        for name in names:
            if name in self.tensors:
                release(name)


def rope_tables(inv_freq: np.ndarray, max_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of position * inv_freq, [max_positions, head_dim // 2] float32, computed in
    float64 once at load."""
    angles = np.outer(np.arange(max_positions, dtype=np.float64), inv_freq)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def add_lm_head(g: Graph, x: str, lm_head: Linear, vocab: int, logits: str) -> None:
    """Final projection to the vocabulary: of every position (logits="all", buffer [T, vocab])
    or of each sequence's last position only (logits="last", [B, vocab]: generation)."""
    if logits == "all":
        g.add("linear", [x], g.buffer("logits", vocab), "lm_head", linear=lm_head)
        return
    last = g.buffer("x_last", g.buffers[x].width, per_sequence=True)
    g.add("last_token", [x], last, "last_token")
    logits_buf = g.buffer("logits", vocab, per_sequence=True)
    g.add("linear", [last], logits_buf, "lm_head", linear=lm_head)
