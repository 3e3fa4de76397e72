"""DecoderModel: a causal LM built from a checkpoint, with forward() and generate().

Plans are made per (batch, seq) shape and reused; the KV cache is allocated per generate call
to the length it needs (prompt + new tokens), so decode steps allocate nothing.
"""

from __future__ import annotations

import numpy as np

from pyengine.loaders import ModelConfig, UnsupportedModelError
from pyengine.models import families
from pyengine.models.common import WeightPacker
from pyengine.runtime.debug import run_checked
from pyengine.runtime.model_lock import ModelLock
from pyengine.runtime.planner import KVCache, Plan, PlanCache, RunState, make_plan


def _architectures() -> dict:
    """family name -> module with prepare() and build()."""
    return {name: f.module for name, f in families.families().items() if f.kind == "decoder"}


ARCHITECTURES = _architectures()


class DecoderModel:
    def __init__(
        self,
        config: ModelConfig,
        tensors,
        tokenizer=None,
        extras=None,
        *,
        dtype: str = "float32",
        debug: bool = False,
        packer=None,
    ):
        arch = ARCHITECTURES.get(config.architecture)
        if arch is None:
            raise UnsupportedModelError(
                f"architecture {config.architecture!r} is not a supported decoder "
                f"(supported: {', '.join(sorted(ARCHITECTURES))})"
            )
        self.config = config
        self.tokenizer = tokenizer
        self.extras = dict(extras or {})
        self.debug = debug
        self._arch = arch
        self.dtype = dtype
        # packer: a recording WeightPacker (pyengine pack) or a pack file's ReplayPacker
        self._packer = packer or WeightPacker(tensors, dtype=dtype, keep_reference=debug)
        self._weights = arch.prepare(config, self._packer)
        self._packer.finish(self.extras.get("source"))
        self._graphs: dict[str, object] = {}
        self._plans = PlanCache(capacity=6)
        self.cache: KVCache | None = None
        self.last_generation: dict = {}  # timings of the latest generate() (set by it)
        # Plans and the KV cache are shared by every call: one call runs at a time.
        self.lock = ModelLock("model")
        self._engine = None  # generate()'s serving engine, made on first use

    # ---- sizes -----------------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        return self.config.max_position_embeddings

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def layer_windows(self) -> tuple[int, ...]:
        """Keys each layer's queries see (its attention op's sliding window; 0: all)."""
        ops = [op for op in self._graph("last").ops if op.kind == "attention"]
        windows = {op.attrs["layer"]: int(op.attrs.get("window", 0)) for op in ops}
        return tuple(windows[i] for i in range(self.config.num_layers))

    @property
    def weight_formats(self) -> dict[str, int]:
        """Format name ("float32", "bfloat16", "Q4_K", ...) -> linear layers stored in it."""
        return dict(self._packer.formats)

    @property
    def matrix_weight_bytes(self) -> int:
        """Bytes of every linear layer's packed weight (each read once per decode step)."""
        return sum(self._packer.layer_bytes.values())

    def _check_length(self, needed: int, what: str) -> None:
        if needed > self.context_length:
            raise ValueError(
                f"{what} needs {needed} positions but the model's context length is "
                f"{self.context_length}"
            )

    # ---- plans and cache -------------------------------------------------------------------

    def _graph(self, logits: str):
        if logits not in self._graphs:
            self._graphs[logits] = self._arch.build(self.config, self._weights, logits)
        return self._graphs[logits]

    def _ensure_cache(self, batch: int, capacity: int) -> KVCache:
        c = self.cache
        if c is None or c.batch != batch or c.capacity < capacity:
            cfg = self.config
            self.cache = KVCache.allocate(
                cfg.num_layers, batch, cfg.num_kv_heads, capacity, cfg.head_dim
            )
        return self.cache

    def plan(self, batch: int, seq: int, logits: str = "last") -> Plan:
        """The plan for running `seq` new tokens of `batch` sequences (kept for reuse)."""
        plan = self._plans.get(
            (logits, batch, seq),
            lambda: make_plan(self._graph(logits), RunState(batch, seq, self.cache)),
        )
        plan.state.cache = self.cache
        return plan

    def _run(self, plan: Plan) -> None:
        if self.debug:
            self.debug_report = run_checked(plan, self._packer.reference_by_linear)
        else:
            plan.run()

    # ---- running ---------------------------------------------------------------------------

    def check_ids(self, ids: np.ndarray, name: str = "input_ids") -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise ValueError(
                f"{name} holds token id {bad}, outside the vocabulary [0, {self.vocab_size})"
            )
        return ids.astype(np.int32)

    def start(self, ids: np.ndarray, pads: np.ndarray, capacity: int, logits: str) -> np.ndarray:
        """Runs a left-padded batch [B, S] (pads[b] leading pad slots) from an empty cache of
        `capacity` positions; returns logits ([B, vocab] for "last", [B, S, vocab] for "all")."""
        batch, seq = ids.shape
        self._check_length(capacity, "this run")
        self._ensure_cache(batch, capacity)
        plan = self.plan(batch, seq, logits)
        st = plan.state
        st.start_pos = 0
        st.ids[...] = ids
        st.positions[...] = np.maximum(np.arange(seq)[None, :] - pads[:, None], 0)
        st.key_begin[...] = pads
        st.key_end[...] = seq
        self._run(plan)
        out = plan.buffers["logits"]
        return out.reshape(batch, seq, -1) if logits == "all" else out

    def step(self, next_ids: np.ndarray, pads: np.ndarray, position: int) -> np.ndarray:
        """One decode step: next_ids [B] go to cache slot `position`; returns logits [B, V]."""
        batch = next_ids.shape[0]
        if position >= self.cache.capacity:
            raise ValueError(
                f"decode position {position} is past the KV cache ({self.cache.capacity} slots)"
            )
        plan = self.plan(batch, 1, "last")
        st = plan.state
        st.start_pos = position
        st.ids[:, 0] = next_ids
        st.positions[:, 0] = position - pads
        st.key_begin[...] = pads
        st.key_end[...] = position + 1
        self._run(plan)
        return plan.buffers["logits"]

    def forward(self, input_ids, attention_mask=None) -> np.ndarray:
        """Logits [batch, seq, vocab] float32 of every position.

        input_ids: [batch, seq] or [seq] integer ids. attention_mask: same shape, 1 for real
        tokens and 0 for padding, padding on the left (as for generation) or on the right;
        positions count real tokens only. Each call starts from an empty cache.
        """
        ids = self.check_ids(input_ids)
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"input_ids must be [batch, seq] with seq >= 1, got {ids.shape}")
        pads = _left_pads(attention_mask, ids.shape)
        with self.lock.held():
            return self.start(ids, pads, ids.shape[1], "all").copy()

    def eos_token_ids(self) -> set[int]:
        """The ids that end generation (config, generation_config and the tokenizer's EOS)."""
        from pyengine.generation.generate import eos_ids

        return eos_ids(self)

    def generation_engine(self, n_prompts: int, prompt_tokens: int, max_new_tokens: int):
        """The engine generate() runs on, kept between calls and grown when a call needs more
        (rows, or KV blocks for every prompt and its new tokens). No prefix caching here, so a
        call's result never depends on the calls before it."""
        from pyengine.serve.engine import Engine

        block = 64
        blocks = (prompt_tokens + n_prompts * (max_new_tokens + block)) // block + 1
        e = self._engine
        # (a model whose every layer keeps its keys in window rings has no other blocks: the
        # count asked for is what says whether this engine is big enough)
        if e is None or e.asked_blocks < blocks or e.max_batch < n_prompts:
            self._engine = None  # the old pool goes before the new one is allocated
            self._engine = Engine(
                self,
                n_blocks=max(blocks, e.asked_blocks if e else 0),
                block_size=block,
                max_batch=max(n_prompts, e.max_batch if e else 1),
                max_step_tokens=max(512, n_prompts),
                max_queue=max(1024, n_prompts),
                prefix_caching=False,
            )
        return self._engine

    def generate(self, prompt=None, **kwargs):
        """See pyengine.generation.generate for the arguments."""
        from pyengine.generation.generate import generate

        return generate(self, prompt, **kwargs)


def _left_pads(mask, shape) -> np.ndarray:
    """Leading padding per row of an attention mask; right padding needs no masking in a
    causal model (no real token attends to a later slot), so it counts as no left padding."""
    if mask is None:
        return np.zeros(shape[0], np.int32)
    mask = np.asarray(mask)
    if mask.ndim == 1:
        mask = mask[None, :]
    if mask.shape != shape:
        raise ValueError(
            f"attention_mask must have the shape of input_ids {shape}, got {mask.shape}"
        )
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("attention_mask must hold only 0 and 1")
    mask = mask.astype(bool)
    pads = np.argmax(mask, axis=1).astype(np.int32)
    for b, row in enumerate(mask):
        if not row.any():
            raise ValueError(f"attention_mask row {b} masks every token")
        real = row[pads[b] :]
        ones = int(real.sum())
        if not real[:ones].all():
            raise ValueError(
                f"attention_mask row {b} has a hole: only left or right padding is supported"
            )
        if ones != len(real) and pads[b] != 0:
            raise ValueError(f"attention_mask row {b} is padded on both sides")
    return pads
