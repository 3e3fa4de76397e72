"""Turns a Graph into a Plan for one (batch, seq) shape: every buffer allocated once, every op
bound to a native kernel call over those buffers. Running a plan then only calls the kernels.

Values that change between runs of the same plan (the cache position, the token ids and their
positions, the visible key range per sequence) live in RunState, which the bound calls read at
call time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from pyengine import _C
from pyengine.runtime.graph import Graph, Op


@dataclass
class KVCache:
    """Per layer K and V, [batch, n_kv_heads, capacity, head_dim] each, the layout the decode
    attention kernel streams."""

    k: list[np.ndarray]
    v: list[np.ndarray]

    @classmethod
    def allocate(cls, layers: int, batch: int, kv_heads: int, capacity: int, head_dim: int):
        shape = (batch, kv_heads, capacity, head_dim)
        return cls(
            [np.zeros(shape, np.float32) for _ in range(layers)],
            [np.zeros(shape, np.float32) for _ in range(layers)],
        )

    @property
    def batch(self) -> int:
        return self.k[0].shape[0] if self.k else 0

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2] if self.k else 0


@dataclass
class RunState:
    batch: int
    seq: int
    cache: KVCache
    start_pos: int = 0
    ids: np.ndarray = field(init=False)  # [B, S] int32 token ids
    positions: np.ndarray = field(init=False)  # [B, S] int32 position ids
    type_ids: np.ndarray = field(init=False)  # [B, S] int32 token type (segment) ids
    key_begin: np.ndarray = field(init=False)  # [B] int32: first visible cache slot
    key_end: np.ndarray = field(init=False)  # [B] int32: one past the last visible slot

    def __post_init__(self):
        self.ids = np.zeros((self.batch, self.seq), np.int32)
        self.positions = np.zeros((self.batch, self.seq), np.int32)
        self.type_ids = np.zeros((self.batch, self.seq), np.int32)
        self.key_begin = np.zeros(self.batch, np.int32)
        self.key_end = np.zeros(self.batch, np.int32)

    def sequence_last_positions(self) -> np.ndarray:
        """[B, S]: each token's sequence's highest position in this run (each row is one
        sequence; left padding sits at position 0)."""
        return np.broadcast_to(self.positions.max(axis=1, keepdims=True), self.positions.shape)


@dataclass
class Step:
    op: Op
    call: object  # zero-argument callable


@dataclass
class Plan:
    graph: Graph
    state: RunState
    buffers: dict[str, np.ndarray]
    steps: list[Step]

    def run(self) -> None:
        for step in self.steps:
            step.call()

    def __str__(self) -> str:
        shapes = ", ".join(f"{n}{list(a.shape)}" for n, a in self.buffers.items())
        lines = [f"plan for batch={self.state.batch} seq={self.state.seq}: {shapes}"]
        lines += [f"  {i:4d} {s.op.name:<24} {s.op.describe()}" for i, s in enumerate(self.steps)]
        return "\n".join(lines)


class PlanCache:
    """The most recently used plans by shape key: plans hold their buffers, so only a few are
    kept; making one again costs an allocation, never a wrong result."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()

    def get(self, key: tuple, make) -> Plan:
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = make()
            while len(self._plans) > self.capacity:
                self._plans.popitem(last=False)
        self._plans.move_to_end(key)
        return plan


def make_plan(graph: Graph, state: RunState) -> Plan:
    tokens = state.batch * state.seq
    buffers = {
        b.name: np.zeros((state.batch if b.per_sequence else tokens, b.width), np.float32)
        for b in graph.activations()
    }
    plan = Plan(graph, state, buffers, [])
    plan.steps = [Step(op, BINDERS[op.kind](op, plan)) for op in graph.ops]
    return plan


# ---- binders: op -> zero-argument call over the plan's buffers ------------------------------


def _io(op: Op, plan: Plan):
    """The op's activation inputs and output (a cache buffer, bound through the run state,
    stands for itself: None)."""
    get = plan.buffers.get
    return [get(name) for name in op.inputs], get(op.output)


def _bind_embed(op, plan):
    _, out = _io(op, plan)
    table = op.attrs["table"]
    ids = getattr(plan.state, op.attrs.get("source", "ids")).reshape(-1)
    if isinstance(table, _C.QuantLinear):  # a table kept in its stored blocks
        return lambda: table.embedding(ids, out=out)
    return lambda: _C.embedding(table, ids, out=out)


def _bind_linear(op, plan):
    (x, *rest), out = _io(op, plan)
    lin = op.attrs["linear"]
    residual = rest[0] if rest else None
    return lambda: lin(x, out=out, residual=residual)


def _bind_rms_norm(op, plan):
    """heads=N: one norm per head of width/N values (q/k norms of Qwen3 and Gemma 3)."""
    (x,), out = _io(op, plan)
    w, eps = op.attrs["weight"], op.attrs["eps"]
    heads = op.attrs.get("heads")
    if heads:
        x, out = x.reshape(-1, w.shape[0]), out.reshape(-1, w.shape[0])
    return lambda: _C.rms_norm(x, w, eps, out=out)


def _bind_layer_norm(op, plan):
    (x,), out = _io(op, plan)
    w, b, eps = op.attrs["weight"], op.attrs["bias"], op.attrs["eps"]
    return lambda: _C.layer_norm(x, w, b, eps, out=out)


def _heads_view(a: np.ndarray, state: RunState, heads: int) -> np.ndarray:
    return a.reshape(state.batch, state.seq, heads, a.shape[-1] // heads)


def _bind_rope(op, plan):
    (x,), out = _io(op, plan)
    assert out is x, "rope works in place"
    state = plan.state
    view = _heads_view(x, state, op.attrs["heads"])
    table, inter = op.attrs["table"], op.attrs["interleaved"]

    def call():
        rows, cos, sin = table.lookup(state)
        _C.rope(view, rows, cos, sin, interleaved=inter)

    return call


def _bind_kv_write(op, plan):
    (k, v), _ = _io(op, plan)
    state, layer, heads = plan.state, op.attrs["layer"], op.attrs["kv_heads"]
    kv, vv = _heads_view(k, state, heads), _heads_view(v, state, heads)

    def call():
        cache = state.cache
        _C.kv_cache_write(kv, vv, cache.k[layer], cache.v[layer], state.start_pos)

    return call


def _bind_attention(op, plan):
    (q, _cache), out = _io(op, plan)
    state, a = plan.state, op.attrs
    qv, ov = _heads_view(q, state, a["heads"]), _heads_view(out, state, a["heads"])
    layer, causal = a["layer"], a["causal"]

    def call():
        cache = state.cache
        _C.attention(
            qv,
            cache.k[layer],
            cache.v[layer],
            start_pos=state.start_pos,
            key_begin=state.key_begin,
            key_end=state.key_end,
            causal=causal,
            **attention_options(a),
            out=ov,
        )

    return call


def attention_options(attrs: dict) -> dict:
    """The per-layer attention attributes an attention op may carry: sliding window (keys per
    query), score scale and soft-cap."""
    return {
        "window": attrs.get("window", 0),
        "scale": attrs.get("scale"),
        "softcap": attrs.get("softcap", 0.0),
    }


def _bind_swiglu(op, plan):
    (x,), out = _io(op, plan)
    return lambda: _C.swiglu(x, out=out)


def _bind_geglu(op, plan):
    (x,), out = _io(op, plan)
    return lambda: _C.geglu(x, out=out)


def _bind_scale(op, plan):
    (x,), out = _io(op, plan)
    s = op.attrs["scale"]
    return lambda: _C.scale(x, s, out=out)


def _bind_softcap(op, plan):
    (x,), out = _io(op, plan)
    cap = op.attrs["cap"]
    return lambda: _C.softcap(x, cap, out=out)


def _bind_gelu(op, plan):
    (x,), out = _io(op, plan)
    approximate = op.attrs["approximate"]
    return lambda: _C.gelu(x, approximate=approximate, out=out)


def _bind_add(op, plan):
    (a, b), out = _io(op, plan)
    return lambda: _C.add(a, b, out=out)


def _bind_last_token(op, plan):
    """out[b] = x[b, seq - 1]: only the last position feeds the LM head during generation."""
    (x,), out = _io(op, plan)
    last = x.reshape(plan.state.batch, plan.state.seq, -1)[:, -1, :]
    return lambda: np.copyto(out, last)


BINDERS = {
    "embed": _bind_embed,
    "linear": _bind_linear,
    "rms_norm": _bind_rms_norm,
    "layer_norm": _bind_layer_norm,
    "rope": _bind_rope,
    "kv_write": _bind_kv_write,
    "attention": _bind_attention,
    "swiglu": _bind_swiglu,
    "geglu": _bind_geglu,
    "scale": _bind_scale,
    "softcap": _bind_softcap,
    "gelu": _bind_gelu,
    "add": _bind_add,
    "last_token": _bind_last_token,
}
