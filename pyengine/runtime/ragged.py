"""Plans over a ragged batch of tokens, for the serving engine.

A step of the engine runs T tokens of several sequences at once: a prompt chunk of one, one
decode token of each of the others. The model's graph is the same as for a plain forward
(activations [T, width]); only three ops bind differently here:
  kv_write   -> each token's K and V go to its slot of the paged pool (RaggedState.slots)
  attention  -> each sequence's queries read its keys through its block table
  last_token -> the rows that feed the LM head (RaggedState.out_rows): the last token of each
                sequence that samples a token this step
Every other op is bound as in planner.py, with the T tokens seen as one batch row of T.

Buffers are views of arenas sized once for the largest step, so plans for new (T, rows) shapes
allocate nothing; the most recent plans are kept per shape (cheap: views and closures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyengine import _C
from pyengine.runtime.graph import Graph
from pyengine.runtime.planner import BINDERS, Plan, PlanCache, Step, attention_options


def _committed(shape) -> np.ndarray:
    """Zeros whose pages are touched now. np.zeros maps pages lazily, so a server's resident
    memory would creep up as the cache and the step arenas fill, looking like a leak for
    minutes, and an overcommitted machine would fail mid-request rather than at start."""
    out = np.empty(shape, np.float32)
    out.fill(0.0)
    return out


@dataclass
class KVPool:
    """Per layer K and V pools, [n_blocks, kv_heads, block_size, head_dim] float32 each: views of
    one allocation."""

    k: list[np.ndarray]
    v: list[np.ndarray]

    @classmethod
    def allocate(cls, layers: int, n_blocks: int, kv_heads: int, block_size: int, head_dim: int):
        return cls.allocate_layers([n_blocks] * layers, kv_heads, block_size, head_dim)

    @classmethod
    def allocate_layers(cls, blocks: list[int], kv_heads: int, block_size: int, head_dim: int):
        """Layer i's pools hold blocks[i] blocks (the window layers' rings are smaller than the
        full-attention layers' pool); layers of one size share one allocation."""
        k, v = [None] * len(blocks), [None] * len(blocks)
        for n in sorted(set(blocks)):
            layers = [i for i, b in enumerate(blocks) if b == n]
            whole = _committed((2, len(layers), n, kv_heads, block_size, head_dim))
            for j, i in enumerate(layers):
                k[i], v[i] = whole[0, j], whole[1, j]
        return cls(k, v)

    @staticmethod
    def bytes_per_block(layers: int, kv_heads: int, block_size: int, head_dim: int) -> int:
        return 2 * layers * kv_heads * block_size * head_dim * 4


@dataclass
class RaggedState:
    """What one step feeds its plan; the engine fills these before each run."""

    seq: int  # T tokens
    batch: int = 1  # the T tokens are one row to the shared binders
    ids: np.ndarray = None  # [1, T] int32
    positions: np.ndarray = None  # [1, T] int32
    slots: np.ndarray = None  # [T] int32: block * block_size + offset of each token's K, V
    q_start: np.ndarray = None  # [S + 1] int32: sequence s owns tokens q_start[s] .. [s+1]-1
    first_pos: np.ndarray = None  # [S] int32: position of each sequence's first token here
    block_table: np.ndarray = None  # [S, max_blocks] int32
    # Layers with a sliding window, when the engine keeps their keys in per-sequence rings:
    # their K, V go to ring_slots, their attention reads through ring_table (see engine.py).
    ring_layers: frozenset = frozenset()
    ring_slots: np.ndarray = None  # [T] int32
    ring_table: np.ndarray = None  # [S, max_blocks] int32: logical block c -> its ring block
    out_rows: np.ndarray = None  # [R] int64: token rows whose logits are wanted
    batch_invariant: bool = False  # see Linear.__call__: the engine's deterministic mode
    pool: KVPool = None

    def sequence_last_positions(self) -> np.ndarray:
        """[1, T]: each token's sequence's highest position in this step."""
        lengths = np.diff(self.q_start)
        last = self.first_pos + lengths - 1
        return np.repeat(last, lengths)[None, :]


class RaggedPlanner:
    def __init__(
        self,
        graph: Graph,
        pool: KVPool,
        max_tokens: int,
        max_rows: int,
        ring_layers: frozenset = frozenset(),
    ):
        self.graph = graph
        self.pool = pool
        self.ring_layers = frozenset(ring_layers)
        self.max_tokens = max_tokens
        self.max_rows = max_rows
        self._arenas = {
            b.name: _committed((max_rows if b.per_sequence else max_tokens, b.width))
            for b in graph.activations()
        }
        # Plans are views and closures, cheap to make again: keep the recent shapes only (a
        # server sees many (tokens, rows) pairs over its life).
        self._plans = PlanCache(capacity=64)

    def plan(self, tokens: int, rows: int) -> Plan:
        """The plan for a step of `tokens` tokens, `rows` of which feed the LM head."""
        if not 1 <= tokens <= self.max_tokens or not 0 <= rows <= self.max_rows:
            raise ValueError(
                f"a step of {tokens} tokens and {rows} output rows exceeds the planner's "
                f"{self.max_tokens} tokens / {self.max_rows} rows"
            )
        return self._plans.get((tokens, rows), lambda: self._make(tokens, rows))

    def _make(self, tokens: int, rows: int) -> Plan:
        buffers = {
            name: arena[: rows if self.graph.buffers[name].per_sequence else tokens]
            for name, arena in self._arenas.items()
        }
        state = RaggedState(seq=tokens)
        state.ids = np.zeros((1, tokens), np.int32)
        state.positions = np.zeros((1, tokens), np.int32)
        state.slots = np.zeros(tokens, np.int32)
        state.ring_slots = np.zeros(tokens, np.int32)
        state.ring_layers = self.ring_layers
        state.out_rows = np.zeros(rows, np.int64)
        state.pool = self.pool
        plan = Plan(self.graph, state, buffers, [])
        binders = {**BINDERS, **RAGGED_BINDERS}
        plan.steps = [Step(op, binders[op.kind](op, plan)) for op in self.graph.ops]
        return plan


# ---- binders that differ from planner.BINDERS ------------------------------------------------


def _bind_linear(op, plan):
    x, *rest = (plan.buffers[n] for n in op.inputs)
    out, lin, state = plan.buffers[op.output], op.attrs["linear"], plan.state
    residual = rest[0] if rest else None
    return lambda: lin(x, out=out, residual=residual, batch_invariant=state.batch_invariant)


def _token_heads(a: np.ndarray, heads: int) -> np.ndarray:
    return a.reshape(a.shape[0], heads, a.shape[1] // heads)


def _bind_paged_kv_write(op, plan):
    k, v = (plan.buffers[n] for n in op.inputs)
    heads, layer, state = op.attrs["kv_heads"], op.attrs["layer"], plan.state
    kv, vv = _token_heads(k, heads), _token_heads(v, heads)
    pool = state.pool
    if layer in state.ring_layers:
        return lambda: _C.paged_kv_write(kv, vv, pool.k[layer], pool.v[layer], state.ring_slots)
    return lambda: _C.paged_kv_write(kv, vv, pool.k[layer], pool.v[layer], state.slots)


def _bind_paged_attention(op, plan):
    if not op.attrs["causal"]:
        raise ValueError("the paged (serving) attention is causal: encoders do not run here")
    q = plan.buffers[op.inputs[0]]  # the second input is the layer's cache
    heads, layer, state = op.attrs["heads"], op.attrs["layer"], plan.state
    qv, ov = _token_heads(q, heads), _token_heads(plan.buffers[op.output], heads)
    pool = state.pool
    options = attention_options(op.attrs)
    ring = layer in state.ring_layers

    def call():
        _C.paged_attention(
            qv,
            pool.k[layer],
            pool.v[layer],
            q_start=state.q_start,
            first_pos=state.first_pos,
            block_table=state.ring_table if ring else state.block_table,
            **options,
            out=ov,
        )

    return call


def _bind_gather_rows(op, plan):
    (x,) = (plan.buffers[n] for n in op.inputs)
    out, state = plan.buffers[op.output], plan.state
    return lambda: np.take(x, state.out_rows, axis=0, out=out)


RAGGED_BINDERS = {
    "linear": _bind_linear,
    "kv_write": _bind_paged_kv_write,
    "attention": _bind_paged_attention,
    "last_token": _bind_gather_rows,
}
