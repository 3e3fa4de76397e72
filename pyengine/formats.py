"""Weight formats: one record per way a matrix weight can be stored, and what `load(dtype=...)`
means for each checkpoint tensor.

A format knows its block geometry (values and bytes per block: the bytes a decode step reads),
the native layer that runs it, how that layer is made (from float32 values or from the stored
blocks), the activation it multiplies (float32, or int8 per 32 values) and the float32 weights
a layer holds (the debug reference). The loader, the model builders, debug mode and the
benchmarks' bytes per token all read these records instead of re-reading dtype strings.

dtypes (`pyengine.load(dtype=...)`):
- "auto" (default): every matrix weight runs as stored. GGUF Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
  Q4_K, Q5_K, Q6_K blocks stay as they are in the file; F32 -> float32; F16/BF16 -> bfloat16;
  any other GGUF type is widened to bfloat16 with a warning naming the tensors.
- "float32", "bfloat16": every matrix weight converted to that float type.
- "int8": quantized at load to Q8_0 (int8 per 32 values, fp16 scale; 8.5 bits per weight).
- "q4": quantized at load to Q4_0 (4 bits per 32 values, fp16 scale; 4.5 bits per weight).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from pyengine import _C
from pyengine.ops import Bf16Linear, Linear, QuantLinear


@dataclass(frozen=True)
class WeightFormat:
    """How one kind of matrix weight is stored and run.

    name: "float32", "bfloat16", or a GGUF block type ("Q4_K").
    block_elems, block_bytes: values and bytes per block along K (1 and 4 for float32).
    activation: what the layer multiplies the weights with on few-row (decode) calls.
    encodes: whether the layer can be made from float32 values (else only from stored blocks).
    """

    name: str
    block_elems: int
    block_bytes: int
    activation: str
    encodes: bool

    @property
    def quantized(self) -> bool:
        return self.name not in ("float32", "bfloat16")

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.block_bytes / self.block_elems

    def row_bytes(self, k: int) -> int:
        """Bytes of one stored row of k values (whole blocks)."""
        return math.ceil(k / self.block_elems) * self.block_bytes

    def from_float(self, weight: np.ndarray, bias: np.ndarray | None = None):
        """The native layer of this format for a float32 weight [out, in]."""
        if self.name == "float32":
            return Linear(weight, bias)
        if self.name == "bfloat16":
            return Bf16Linear(weight, bias)
        if not self.encodes:
            raise ValueError(f"weights cannot be quantized to {self.name} at load")
        return QuantLinear.quantize(weight, self.name, bias)

    def from_blocks(self, data: np.ndarray, in_features: int, bias: np.ndarray | None = None):
        """The native layer for stored blocks data: uint8 [out, row_bytes(in_features)]."""
        return QuantLinear(data, self.name, in_features, bias)

    def reference_weight(self, layer, weight: np.ndarray | None = None) -> np.ndarray:
        """The float32 weight `layer` multiplies by (debug mode's reference)."""
        if self.quantized:
            return layer.dequantize()
        from pyengine.runtime.reference import round_bf16

        return round_bf16(weight) if self.name == "bfloat16" else np.array(weight)


def _formats() -> dict[str, WeightFormat]:
    int8 = "int8 per 32 values (scale max|x|/127); float32 on many-row calls"
    out = {
        "float32": WeightFormat("float32", 1, 4, "float32", True),
        "bfloat16": WeightFormat("bfloat16", 1, 2, "float32", True),
    }
    for f in _C.quant_formats():
        encodes = f["name"] in ("Q8_0", "Q4_0")
        out[f["name"]] = WeightFormat(f["name"], f["block_elems"], f["block_bytes"], int8, encodes)
    return out


FORMATS: dict[str, WeightFormat] = _formats()

# load(dtype=...) -> the format every matrix weight gets (None: each tensor's own, see "auto")
DTYPE_FORMATS: dict[str, str | None] = {
    "auto": None,
    "float32": "float32",
    "bfloat16": "bfloat16",
    "int8": "Q8_0",
    "q4": "Q4_0",
}
DTYPES = tuple(DTYPE_FORMATS)

# stored float types -> the format "auto" runs them in
_AUTO_FLOAT = {"F32": "float32", "F64": "float32", "F16": "bfloat16", "BF16": "bfloat16"}


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPE_FORMATS:
        raise ValueError(f"dtype {dtype!r} is not supported; choose from {DTYPES}")
    return dtype


def format_for(dtype: str, stored: str) -> WeightFormat:
    """The format a tensor stored as `stored` ("F32", "BF16", "Q4_K", ...) runs in with `dtype`."""
    named = DTYPE_FORMATS[check_dtype(dtype)]
    if named is not None:
        return FORMATS[named]
    if stored in _AUTO_FLOAT:
        return FORMATS[_AUTO_FLOAT[stored]]
    if stored in FORMATS:
        return FORMATS[stored]
    return FORMATS["bfloat16"]  # a block type without kernels: widened (see warn_widened)


def runs_as_stored(dtype: str, stored: str) -> bool:
    """Whether `dtype` keeps a tensor stored as `stored` in its own blocks (no conversion)."""
    return (
        DTYPE_FORMATS[check_dtype(dtype)] is None
        and stored in FORMATS
        and stored
        not in (
            "float32",
            "bfloat16",
        )
    )


def warn_widened(widened: dict[str, str], source) -> None:
    """One warning for the tensors "auto" had to widen (block types without kernels)."""
    if not widened:
        return
    by_type: dict[str, list[str]] = {}
    for name, stored in widened.items():
        by_type.setdefault(stored, []).append(name)
    parts = [f"{t}: {len(n)} tensor(s), e.g. {n[0]}" for t, n in sorted(by_type.items())]
    warnings.warn(
        f"{source}: no native kernels for {'; '.join(parts)}; these run widened to bfloat16",
        stacklevel=3,
    )


def layer_format(layer) -> WeightFormat:
    """The format of a native linear layer."""
    if isinstance(layer, QuantLinear):
        return FORMATS[layer.format]
    return FORMATS["bfloat16" if isinstance(layer, Bf16Linear) else "float32"]
