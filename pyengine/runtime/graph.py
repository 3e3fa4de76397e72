"""A model as a list of ops over named activation buffers.

Every activation buffer is a 2-D float32 array [T, width], T = batch * seq tokens of the run
(or [B, width] for buffers marked per_sequence, e.g. the last position's hidden state). Ops that
need another view (attention's [B, S, heads, head_dim]) reshape at plan time, without copying.
A Graph holds no shapes that depend on the run; the planner (planner.py) fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Buffer:
    name: str
    width: int
    per_sequence: bool = False  # [B, width] instead of [T, width]
    # A layer's KV cache: state that outlives a run, owned by the run's cache (a dense KVCache
    # or the engine's paged pool), never allocated by the planner. kv_write outputs it and
    # attention reads it, so the graph shows the dependency the kernels have.
    cache: bool = False


@dataclass
class Op:
    """One native kernel call: `kind` names it (see planner.BINDERS), `inputs` and `output` are
    buffer names (output may be one of the inputs: in place), `attrs` its fixed parameters
    (weights already packed, eps, layer index ...)."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def describe(self) -> str:
        shown = {k: v for k, v in self.attrs.items() if isinstance(v, (int, float, str, bool))}
        args = ", ".join(self.inputs)
        extra = " ".join(f"{k}={v}" for k, v in shown.items())
        return f"{self.output} = {self.kind}({args}) {extra}".rstrip()


@dataclass
class Graph:
    buffers: dict[str, Buffer] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)

    def buffer(self, name: str, width: int, per_sequence: bool = False) -> str:
        known = self.buffers.get(name)
        if known is not None and (known.width, known.per_sequence) != (width, per_sequence):
            raise ValueError(f"buffer {name!r} redeclared with another shape")
        self.buffers[name] = Buffer(name, width, per_sequence)
        return name

    def cache(self, layer: int) -> str:
        """The buffer naming layer `layer`'s KV cache (see Buffer.cache)."""
        name = f"kv_cache{layer}"
        self.buffers[name] = Buffer(name, 0, cache=True)
        return name

    def activations(self):
        """The buffers a plan allocates (every one but the caches)."""
        return [b for b in self.buffers.values() if not b.cache]

    def add(self, kind: str, inputs, output: str, name: str = "", **attrs) -> Op:
        for b in (*inputs, output):
            if b not in self.buffers:
                raise ValueError(f"op {kind} uses undeclared buffer {b!r}")
        op = Op(kind, tuple(inputs), output, attrs, name or kind)
        self.ops.append(op)
        return op

    def __str__(self) -> str:
        lines = [
            f"{len(self.ops)} ops, buffers: "
            + ", ".join(
                f"{b.name}[cache]"
                if b.cache
                else f"{b.name}[{'B' if b.per_sequence else 'T'},{b.width}]"
                for b in self.buffers.values()
            )
        ]
        lines += [f"  {i:4d} {op.name:<24} {op.describe()}" for i, op in enumerate(self.ops)]
        return "\n".join(lines)
