"""A model's packed weights as a pack file's blobs, and back.

A family's prepare() reaches its weights only through WeightPacker's logged calls, in a fixed
order. `encode_log` turns a recording packer's log into JSON entries plus blobs (each native
layer's packed bytes as the kernels read them, each float32 array's values); `ReplayPacker`
answers the same calls, in the same order, with layers made over the pack file's memory map
(no copy, no repacking) and read-only array views. Each call is checked against the entry it
replays (method and arguments), so a pack file written by other model code is refused, never
misread.
"""

from __future__ import annotations

import math

import numpy as np

from pyengine.formats import layer_format
from pyengine.models.common import call_key
from pyengine.ops import Bf16Linear, Linear, QuantLinear

LAYER_CLASSES = {"Linear": Linear, "Bf16Linear": Bf16Linear, "QuantLinear": QuantLinear}
_LAYERS = tuple(LAYER_CLASSES.values())


def _is_layer(v) -> bool:
    return isinstance(v, _LAYERS)


def _is_array(v) -> bool:
    return isinstance(v, np.ndarray)


# what each logged call returns: a replayed entry must decode to the same kind
RESULT_KINDS = {
    "array": _is_array,
    "stored_dtype": lambda v: isinstance(v, str),
    "linear": _is_layer,
    "linear_from": _is_layer,
    "linear_concat": _is_layer,
    "linear_conv1d": _is_layer,
    "linear_split": lambda v: isinstance(v, list) and all(_is_layer(x) for x in v),
    "embedding_and_head": lambda v: (
        isinstance(v, list) and len(v) == 2 and (_is_array(v[0]) or _is_layer(v[0]))
        and _is_layer(v[1])
    ),
}  # fmt: skip


def encode_log(log: list) -> tuple[list, list, list, list]:
    """(entries, layers, arrays, blobs) of a WeightPacker log. entries: [method, key, result]
    with results as JSON ({"layer": i}, {"array": j}, {"seq": [...]}, strings, null); layers:
    {"class", "format", "out", "in", "isa", "data", "bias"} (blob indices; bias null or a
    blob); arrays: {"shape", "blob"}; blobs: the bytes, in order."""
    layers: list[dict] = []
    arrays: list[dict] = []
    blobs: list = []
    layer_index: dict[int, int] = {}
    array_index: dict[int, int] = {}

    def blob(data) -> int:
        blobs.append(data)
        return len(blobs) - 1

    def encode(obj):
        if obj is None or isinstance(obj, (str, bool, int, float)):
            return obj
        if isinstance(obj, (list, tuple)):
            return {"seq": [encode(x) for x in obj]}
        if isinstance(obj, np.ndarray):
            if obj.dtype != np.float32:
                raise TypeError(f"a packed model's arrays are float32, not {obj.dtype}")
            if id(obj) not in array_index:
                values = np.ascontiguousarray(obj)
                arrays.append({"shape": list(values.shape), "blob": blob(values.reshape(-1))})
                array_index[id(obj)] = len(arrays) - 1
            return {"array": array_index[id(obj)]}
        if type(obj).__name__ not in LAYER_CLASSES:
            raise TypeError(f"cannot pack a {type(obj).__name__}")
        if id(obj) not in layer_index:
            bias = obj.bias
            layers.append(
                {
                    "class": type(obj).__name__,
                    "format": layer_format(obj).name,
                    "out": obj.out_features,
                    "in": obj.in_features,
                    "isa": obj.isa,
                    "data": blob(obj.packed_data()),
                    "bias": None if bias is None else blob(bias),
                }
            )
            layer_index[id(obj)] = len(layers) - 1
        return {"layer": layer_index[id(obj)]}

    entries = [[method, key, encode(result)] for method, key, result in log]
    return entries, layers, arrays, blobs


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class ReplayPacker:
    """WeightPacker's face over a pack file (pyengine.loaders.pack_file.PackFile) whose header
    holds "log", "layers" and "arrays" as encode_log wrote them."""

    def __init__(self, pack, dtype: str):
        h = pack.header
        self.pack = pack
        self.dtype = dtype
        self.entries = h.get("log")
        self.layer_specs = h.get("layers")
        self.array_specs = h.get("arrays")
        for what in ("log", "layers", "arrays"):
            if not isinstance(h.get(what), list):
                raise pack.error(f"header has no {what} list")
        self.position = 0
        self._layers: dict[int, object] = {}
        self._arrays: dict[int, np.ndarray] = {}
        # what WeightPacker offers its model
        self.tensors = None
        self.log = None
        self.keep_reference = False
        self.reference_by_linear: dict[int, tuple] = {}
        self.widened: dict[str, str] = {}
        self.formats: dict[str, int] = {}
        self.layer_bytes: dict[int, int] = {}

    # ---- the calls a family's prepare() makes ----------------------------------------------

    def array(self, *args, **kwargs):
        return self._replay("array", args, kwargs)

    def stored_dtype(self, *args, **kwargs):
        return self._replay("stored_dtype", args, kwargs)

    def linear(self, *args, **kwargs):
        return self._replay("linear", args, kwargs)

    def linear_from(self, *args, **kwargs):
        return self._replay("linear_from", args, kwargs)

    def linear_concat(self, *args, **kwargs):
        return self._replay("linear_concat", args, kwargs)

    def linear_split(self, *args, **kwargs):
        return self._replay("linear_split", args, kwargs)

    def linear_conv1d(self, *args, **kwargs):
        return self._replay("linear_conv1d", args, kwargs)

    def embedding_and_head(self, *args, **kwargs):
        return self._replay("embedding_and_head", args, kwargs)

    def release(self, *names: str) -> None:
        pass  # nothing is held per name: the layers are views of the file

    def finish(self, source=None) -> None:
        if self.position != len(self.entries):
            raise self.pack.error(
                f"holds {len(self.entries)} weight entries but this pyengine's model used "
                f"{self.position}: it was packed by other model code; pack the model again"
            )

    # ---- replay ----------------------------------------------------------------------------

    def _replay(self, method: str, args, kwargs):
        i = self.position
        if i >= len(self.entries):
            raise self.pack.error(
                f"holds {len(self.entries)} weight entries; this pyengine's model asks for more "
                f"({method}{args!r}): it was packed by other model code; pack the model again"
            )
        entry = self.entries[i]
        if not (isinstance(entry, list) and len(entry) == 3):
            raise self.pack.error(f"weight entry {i} is not [method, arguments, result]")
        key = call_key(args, kwargs)
        if entry[0] != method or entry[1] != key:
            raise self.pack.error(
                f"weight entry {i} is {entry[0]}{entry[1]}, but this pyengine's model asks for "
                f"{method}{key}: it was packed by other model code; pack the model again"
            )
        self.position += 1
        result = self._decode(entry[2], i)
        if not RESULT_KINDS[method](result):
            raise self.pack.error(f"weight entry {i} ({method}) holds a result of the wrong kind")
        return result

    def _decode(self, obj, entry: int):
        if obj is None or isinstance(obj, (str, bool, int, float)):
            return obj
        if isinstance(obj, dict) and len(obj) == 1:
            ((kind, value),) = obj.items()
            if kind == "seq" and isinstance(value, list):
                return [self._decode(v, entry) for v in value]
            if kind == "layer":
                return self._layer(value)
            if kind == "array":
                return self._array(value)
        raise self.pack.error(f"weight entry {entry} has a result it cannot read: {obj!r:.80}")

    def _spec(self, specs: list, i, what: str) -> dict:
        if not _int(i) or not 0 <= i < len(specs) or not isinstance(specs[i], dict):
            raise self.pack.error(f"refers to {what} {i!r}; it has {len(specs)}")
        return specs[i]

    def _array(self, i) -> np.ndarray:
        spec = self._spec(self.array_specs, i, "array")
        if i in self._arrays:
            return self._arrays[i]
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(_int(d) and d >= 0 for d in shape):
            raise self.pack.error(f"array {i} has no valid shape")
        data = self.pack.blob(spec.get("blob"))
        if data.nbytes != 4 * math.prod(shape):  # Python ints: no wrap
            raise self.pack.error(
                f"array {i}: shape {shape} of float32 needs {4 * math.prod(shape)} bytes, "
                f"its blob holds {data.nbytes}"
            )
        self._arrays[i] = data.view(np.float32).reshape(shape)
        return self._arrays[i]

    def _layer(self, i):
        spec = self._spec(self.layer_specs, i, "layer")
        if i in self._layers:
            return self._layers[i]
        cls = LAYER_CLASSES.get(spec.get("class"))
        out, inp = spec.get("out"), spec.get("in")
        if cls is None or not (_int(out) and _int(inp)):
            raise self.pack.error(f"layer {i} has no valid class, out and in")
        if spec.get("isa") != self.pack.header.get("isa"):  # the level whose layout was checked
            raise self.pack.error(
                f"layer {i} is packed for {spec.get('isa')!r}, the file for "
                f"{self.pack.header.get('isa')!r}"
            )
        bias = None
        if spec.get("bias") is not None:
            raw = self.pack.blob(spec["bias"])
            if raw.nbytes != 4 * out:
                raise self.pack.error(f"layer {i}: bias of {raw.nbytes} bytes for {out} outputs")
            bias = raw.view(np.float32)
        data = self.pack.blob(spec.get("data"))
        try:
            if cls is QuantLinear:
                layer = cls.from_packed(data, spec.get("format"), out, inp, bias, isa=spec["isa"])
            else:
                layer = cls.from_packed(data, out, inp, bias, isa=spec["isa"])
        except (TypeError, ValueError) as exc:  # wrong types, sizes, shapes or level
            raise self.pack.error(f"layer {i}: {exc}") from None
        name = layer_format(layer).name
        self.formats[name] = self.formats.get(name, 0) + 1
        self.layer_bytes[id(layer)] = layer.packed_nbytes
        self._layers[i] = layer
        return layer
