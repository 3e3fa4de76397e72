"""The serving engine: continuous batching over a paged KV cache.

An Engine owns a decoder model's step plans and a KV pool. Requests join and leave at any step:

  step():
    take in new requests and cancellations (thread-safe inbox)
    admit waiting requests while the batch has room and the pool has their blocks (a prompt
        prefix already in the pool is shared, not recomputed)
    pick this step's tokens: one decode token of every running sequence, then prompt chunks
        of the sequences still prefilling, up to max_step_tokens (and prefill_while_decoding
        prompt tokens, if set, while some sequences decode)
    run the model once over those tokens (ragged: runtime/ragged.py)
    sample a token for every sequence whose prompt is done, each with its own parameters
    emit tokens and text pieces; retire finished or cancelled sequences and free their blocks

Layers with a sliding window keep a sequence's keys in a ring of blocks (ring_size), a pool
of their own: logical block c of the sequence lives in ring block c mod the ring's length. The
kernels never read a block wholly before a query's window, so overwriting those is safe, and
the window layers' memory per sequence stays bounded by the window whatever the context.

The model's forward keeps no serving state: which sequences run, their block tables and
positions live here (vLLM's split: scheduler and block manager outside the model).

Use it synchronously (generate(): submit, then step() until idle, in the caller's thread) or
with start(), which runs steps in a background thread for a server.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pyengine.generation.detokenize import TextStream
from pyengine.generation.sampling import Sampler
from pyengine.runtime.heap import return_freed_heap
from pyengine.runtime.ragged import KVPool, RaggedPlanner
from pyengine.serve.block_manager import BlockManager, CacheFullError, block_hashes


def ring_size(windows, block_size: int, max_step_tokens: int) -> int:
    """Blocks of the ring that holds a sequence's keys for its sliding-window layers (0: no
    layer has a window). A step writes up to max_step_tokens positions p0 .. p0 + n - 1 while
    its first query still reads keys from p0 - window + 1 on: those span at most
    ceil((n + window - 2) / block_size) + 1 blocks, so a ring that long is never overwritten
    where a query of the step (or a later one) still looks. Memory per sequence is then
    proportional to the window, not to the context."""
    window = max(windows, default=0)
    if not window:
        return 0
    return -(-(max_step_tokens + window - 2) // block_size) + 1


class EngineError(RuntimeError):
    """A request the engine cannot take."""


class QueueFullError(EngineError):
    """Too many requests are waiting; try again later."""


class RequestTooLargeError(EngineError, ValueError):
    """The request could never fit the KV cache or the model's context."""


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None  # None: no logprobs; k >= 0: the chosen token's and k others'
    ignore_eos: bool = False

    def check(self) -> None:
        """Raises ValueError naming the first parameter out of range."""
        if int(self.max_tokens) != self.max_tokens or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens}")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise ValueError(f"logprobs must be in [0, 20], got {self.logprobs}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError("stop must be a non-empty string or a list of them")
        self.sampler()  # validates temperature, top_k, top_p, repetition_penalty

    def sampler(self, index: int = 0) -> Sampler:
        """The sampler of choice `index` (n > 1 choices draw differently under one seed)."""
        seed = self.seed if index == 0 or self.seed is None else [self.seed, index]
        return Sampler(self.temperature, self.top_k, self.top_p, self.repetition_penalty, seed)


@dataclass
class Event:
    """What a request hears after a step: a token (with its text piece) or its end."""

    request: Request
    token: int | None = None
    text: str = ""
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None
    finish_reason: str | None = None  # "stop", "length", "cancelled", "error" when it ended
    error: str | None = None


class Request:
    """One sequence through the engine. Created by Engine.submit."""

    def __init__(self, rid, prompt, params: SamplingParams, sampler: Sampler, on_event, stream):
        self.id = rid
        self.prompt = [int(t) for t in prompt]
        self.params = params
        self.sampler = sampler
        self.on_event = on_event  # called from the engine's thread with each Event
        self.tokens = list(self.prompt)  # prompt + generated
        self.output: list[int] = []
        self.text = stream  # TextStream or None (no tokenizer)
        self.blocks: list[int] = []  # pool blocks for prompt + max_tokens, taken at admission
        self.table = np.zeros(0, np.int32)  # the same as an array (the step's block table row)
        self.ring = np.zeros(0, np.int32)  # its ring of blocks for the window layers, if any
        self.computed = 0  # tokens whose K, V are in the pool
        self.cached_tokens = 0  # prompt tokens found in the prefix cache
        self.registered = 0  # full prompt blocks offered to the prefix cache
        self.hashes: list[int] | None = None  # of the prompt's full blocks, at admission
        self.finish_reason: str | None = None
        self.submitted = time.perf_counter()

    @property
    def prefilling(self) -> bool:
        return self.computed < len(self.prompt)


class Engine:
    def __init__(
        self,
        model,
        *,
        kv_cache_gb: float | None = None,
        n_blocks: int | None = None,
        block_size: int = 64,
        max_batch: int = 64,
        max_step_tokens: int = 512,
        prefill_while_decoding: int | None = None,
        max_queue: int = 1024,
        prefix_caching: bool = True,
        deterministic: bool = False,
        metrics=None,
    ):
        cfg = model.config
        if max_batch < 1 or max_step_tokens < max_batch:
            raise ValueError(
                f"need max_batch >= 1 and max_step_tokens >= max_batch, got {max_batch}, "
                f"{max_step_tokens}"
            )
        self.model = model
        self.block_size = block_size
        self.max_batch = max_batch
        self.max_step_tokens = max_step_tokens
        # None: no limit beyond max_step_tokens. Measured with 16 streams arriving at once,
        # 128 gave a 2-3x higher inter-token p99 than 512: the prompts' prefill then spreads
        # over many steps while the first streams decode; a lower limit bounds each stall when
        # requests arrive one by one instead.
        self.prefill_while_decoding = max(1, prefill_while_decoding or max_step_tokens)
        self.max_queue = max_queue
        self.deterministic = deterministic
        # Deterministic: prompts are cut at fixed positions (multiples of the chunk), so a
        # sequence computes the same way alone or beside any others.
        # (whole blocks, so a reused prefix ends where a chunk does)
        self.prefill_chunk = None
        if deterministic:
            room = (max_step_tokens - max_batch) // block_size * block_size
            self.prefill_chunk = max(block_size, room)
        windows = model.layer_windows
        self.ring_blocks_per_seq = ring_size(windows, block_size, max_step_tokens)
        if self.ring_blocks_per_seq >= -(-model.context_length // block_size):
            self.ring_blocks_per_seq = 0  # a ring as long as the context saves nothing
        ring_layers = frozenset(i for i, w in enumerate(windows) if w and self.ring_blocks_per_seq)
        n_full = cfg.num_layers - len(ring_layers)

        def per_block(layers: int) -> int:
            return KVPool.bytes_per_block(layers, cfg.num_kv_heads, block_size, cfg.head_dim)

        self.asked_blocks = n_blocks or 0
        n_ring = max_batch * self.ring_blocks_per_seq  # every running sequence's ring
        if n_blocks is None:
            gb = 1.0 if kv_cache_gb is None else float(kv_cache_gb)
            if not gb > 0:
                raise ValueError(f"kv_cache_gb must be > 0, got {kv_cache_gb}")
            budget = int(gb * 2**30)
            if ring_layers:  # the rings take at most half the budget when other layers share it
                share = budget // 2 if n_full else budget
                rings = max(
                    1,
                    min(
                        max_batch, share // per_block(len(ring_layers)) // self.ring_blocks_per_seq
                    ),
                )
                n_ring = rings * self.ring_blocks_per_seq
                budget -= n_ring * per_block(len(ring_layers))
            n_blocks = max(1, budget // per_block(n_full)) if n_full else 0
        elif not n_full:
            n_blocks = 0
        elif n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.kv_bytes = n_blocks * per_block(n_full) + n_ring * per_block(len(ring_layers))
        # Prefix caching skips the K, V of a shared prefix: the rings would miss them.
        self.blocks = BlockManager(n_blocks, block_size, prefix_caching and not ring_layers)
        self.rings = BlockManager(n_ring, block_size, False) if ring_layers else None
        self.pool = KVPool.allocate_layers(
            [n_ring if i in ring_layers else n_blocks for i in range(cfg.num_layers)],
            cfg.num_kv_heads,
            block_size,
            cfg.head_dim,
        )
        self.planner = RaggedPlanner(
            model._graph("last"), self.pool, max_step_tokens, max_batch, ring_layers
        )
        self.eos = set(model.eos_token_ids())
        self.metrics = metrics
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._inbox: list[Request] = []
        self._cancels: list[Request] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._next_id = 0
        self._thread: threading.Thread | None = None
        self._stop = False

    # ---- requests (any thread) ---------------------------------------------------------------

    def submit(self, prompt, params: SamplingParams, on_event=None, index: int = 0) -> Request:
        """Queues a request for prompt ids. Raises ValueError for bad parameters or ids,
        RequestTooLargeError when it can never fit, QueueFullError when the queue is full."""
        params.check()
        prompt = self.model.check_ids(np.asarray(prompt), "prompt")
        if prompt.ndim != 1 or prompt.size == 0:
            raise ValueError("prompt must be a non-empty 1-D sequence of token ids")
        needed = prompt.size + params.max_tokens
        if needed > self.model.context_length:
            raise RequestTooLargeError(
                f"prompt ({prompt.size} tokens) + max_tokens ({params.max_tokens}) = {needed} "
                f"exceeds the model's context length {self.model.context_length}"
            )
        self.model._check_length(needed, "this request")
        if self.blocks.n_blocks and self.blocks.blocks_for(needed) > self.blocks.n_blocks:
            raise RequestTooLargeError(
                f"prompt + max_tokens = {needed} tokens needs {self.blocks.blocks_for(needed)} "
                f"KV blocks; the cache holds {self.blocks.n_blocks} "
                f"({self.kv_bytes / 2**30:.2f} GiB): raise kv_cache_gb or lower max_tokens"
            )
        tok = self.model.tokenizer
        if params.stop and tok is None:
            raise ValueError("stop strings need the model's tokenizer")
        stream = TextStream(tok, list(params.stop)) if tok is not None else None
        with self._lock:
            if len(self.waiting) + len(self._inbox) >= self.max_queue:
                raise QueueFullError(f"{self.max_queue} requests are already waiting")
            req = Request(self._next_id, prompt, params, params.sampler(index), on_event, stream)
            self._next_id += 1
            self._inbox.append(req)
            self._wake.notify()
        return req

    def cancel(self, req: Request) -> None:
        """Ends a request at the next step and frees its cache (a client went away)."""
        with self._lock:
            self._cancels.append(req)
            self._wake.notify()

    @property
    def idle(self) -> bool:
        return not (self.waiting or self.running or self._inbox)

    # ---- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        """Runs steps in a background thread while there is work (a server's engine)."""
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="pyengine-engine", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        stepped = False  # steps run since the heap was last trimmed
        while True:
            with self._lock:
                quiet = self.idle and not self._cancels and not self._stop
            if stepped and quiet:
                # going idle: hand the C heap's free pages back (runtime/heap.py), so that a
                # burst's freed request state does not stay resident until the next burst
                return_freed_heap()
                stepped = False
            with self._lock:
                while not self._stop and self.idle and not self._cancels:
                    self._wake.wait()
                if self._stop:
                    break
            stepped = True
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - fail the step's requests, keep serving
                for req in list(self.running) + list(self.waiting):
                    self._finish(req, "error", error=f"{type(e).__name__}: {e}")
                self.running.clear()
                self.waiting.clear()
        for req in list(self.running) + list(self.waiting) + self._inbox:
            self._finish(req, "cancelled")

    def run_until_idle(self) -> None:
        while not self.idle or self._cancels:
            self.step()

    def step(self) -> list[Event]:
        """One scheduling step; returns the events it emitted."""
        events: list[Event] = []
        with self._lock:
            self.waiting.extend(self._inbox)
            self._inbox.clear()
            cancels, self._cancels = self._cancels, []
        for req in cancels:
            if req.finish_reason is None:
                events.append(self._finish(req, "cancelled"))
        self._admit()
        batch = self._schedule()
        if batch:
            events += self._run(batch)
        if self.metrics is not None:
            self.metrics.engine_state(self)
        return events

    # ---- scheduling --------------------------------------------------------------------------

    def _admit(self) -> None:
        bs = self.block_size
        while self.waiting and len(self.running) < self.max_batch:
            req = self.waiting[0]
            if req.finish_reason is not None:
                self.waiting.popleft()
                continue
            total = len(req.prompt) + req.params.max_tokens
            if req.hashes is None:  # once: the head of the queue may wait several steps
                req.hashes = block_hashes(req.prompt, bs)
            # Reuse whole blocks of a cached prefix, but compute at least the prompt's last token
            # (its logits give the first new token). Deterministic: only whole chunks, so the
            # rest of the prompt is cut at the same positions as without the cache.
            usable = (len(req.prompt) - 1) // bs
            if self.deterministic:
                usable = (len(req.prompt) - 1) // self.prefill_chunk * self.prefill_chunk // bs
            shared = self.blocks.lookup(req.hashes[:usable])
            ring = []
            try:
                if self.rings is not None:
                    ring = self.rings.allocate(min(self.ring_blocks_per_seq, -(-total // bs)))
                full = self.blocks.blocks_for(total) if self.blocks.n_blocks else 0
                req.blocks = self.blocks.allocate(full - len(shared), shared)
            except CacheFullError:
                if ring:
                    self.rings.free(ring)
                return  # the head of the queue waits for blocks to come free
            self.waiting.popleft()
            req.table = np.asarray(req.blocks, np.int32)
            req.ring = np.asarray(ring, np.int32)
            req.computed = req.cached_tokens = len(shared) * bs
            req.registered = len(shared)
            self.running.append(req)

    def _schedule(self) -> list[tuple[Request, int]]:
        """(request, tokens it runs this step): decode tokens first, then prompt chunks."""
        batch, budget = [], self.max_step_tokens
        for req in self.running:
            if not req.prefilling:
                batch.append((req, 1))
                budget -= 1
        if batch and not self.deterministic:
            # Streams are decoding: every prompt token in this step delays their next token.
            budget = min(budget, self.prefill_while_decoding)
        for req in self.running:
            if not req.prefilling or budget <= 0:
                continue
            left = len(req.prompt) - req.computed
            if self.deterministic:
                chunk_end = (req.computed // self.prefill_chunk + 1) * self.prefill_chunk
                n = min(left, chunk_end - req.computed)
                if n > budget:
                    continue  # a chunk is never cut by the load: it waits for a step with room
            else:
                n = min(left, budget)
            batch.append((req, n))
            budget -= n
        return batch

    # ---- running a step ----------------------------------------------------------------------

    def _run(self, batch: list[tuple[Request, int]]) -> list[Event]:
        bs = self.block_size
        tokens = sum(n for _, n in batch)
        sampling = [req for req, n in batch if req.computed + n >= len(req.prompt)]
        plan = self.planner.plan(tokens, len(sampling))
        st = plan.state
        st.batch_invariant = self.deterministic
        n_seqs = len(batch)
        st.q_start = np.zeros(n_seqs + 1, np.int32)
        st.first_pos = np.zeros(n_seqs, np.int32)
        width = max(len(req.blocks) for req, _ in batch)
        st.block_table = np.zeros((n_seqs, width), np.int32)
        if self.rings is not None:
            ring_width = max(-(-(req.computed + n) // bs) for req, n in batch)
            st.ring_table = np.zeros((n_seqs, ring_width), np.int32)
        at, out_row = 0, 0
        for s, (req, n) in enumerate(batch):
            pos = req.computed
            table = req.table
            st.block_table[s, : len(table)] = table
            positions = np.arange(pos, pos + n, dtype=np.int32)
            st.ids[0, at : at + n] = req.tokens[pos : pos + n]
            st.positions[0, at : at + n] = positions
            if len(table):
                st.slots[at : at + n] = table[positions // bs] * bs + positions % bs
            if self.rings is not None:  # logical block c lives in ring block c mod ring length
                ring = req.ring
                logical = np.arange(-(-(pos + n) // bs))
                st.ring_table[s, : len(logical)] = ring[logical % len(ring)]
                st.ring_slots[at : at + n] = (
                    ring[(positions // bs) % len(ring)] * bs + positions % bs
                )
            st.first_pos[s] = pos
            at += n
            st.q_start[s + 1] = at
            if req.computed + n >= len(req.prompt):
                st.out_rows[out_row] = at - 1
                out_row += 1
        plan.run()
        logits = plan.buffers["logits"]
        for req, n in batch:
            req.computed += n
            self._register_prompt_blocks(req)
        events = []
        for row, req in enumerate(sampling):
            events += self._sample(req, logits[row])
        self.running = [r for r in self.running if r.finish_reason is None]
        return events

    def _register_prompt_blocks(self, req: Request) -> None:
        if not self.blocks.prefix_caching:
            return
        full = min(req.computed, len(req.prompt)) // self.block_size
        for i in range(req.registered, full):
            self.blocks.register(req.blocks[i], req.hashes[i])
        req.registered = max(req.registered, full)

    def _sample(self, req: Request, logits: np.ndarray) -> list[Event]:
        if req.finish_reason is not None:
            return []
        p = req.params
        token = req.sampler.sample_row(logits, np.asarray(req.tokens))
        event = Event(req, token=token)
        if p.logprobs is not None:
            x = logits.astype(np.float64)
            logz = x.max() + np.log(np.exp(x - x.max()).sum())
            event.logprob = float(x[token] - logz)
            if p.logprobs:
                top = np.argpartition(-x, p.logprobs - 1)[: p.logprobs]
                top = top[np.argsort(-x[top], kind="stable")]
                event.top_logprobs = [(int(t), float(x[t] - logz)) for t in top]
        req.tokens.append(token)
        req.output.append(token)
        if req.text is not None:
            event.text = req.text.feed(token)
        if self.metrics is not None:
            self.metrics.token(req)
        if req.text is not None and req.text.stopped:
            event.finish_reason = "stop"
        elif token in self.eos and not p.ignore_eos:
            event.finish_reason = "stop"
        elif len(req.output) >= p.max_tokens:
            event.finish_reason = "length"
        if event.finish_reason is not None:
            if req.text is not None:
                event.text += req.text.flush()
            self._release(req, event.finish_reason)
        self._emit(event)
        return [event]

    def _finish(self, req: Request, reason: str, error: str | None = None) -> Event:
        self._release(req, reason)
        if req in self.running:
            self.running.remove(req)
        event = Event(req, finish_reason=reason, error=error)
        self._emit(event)
        return event

    def _release(self, req: Request, reason: str) -> None:
        if req.finish_reason is None:
            req.finish_reason = reason
            if req.blocks:
                self.blocks.free(req.blocks)
                req.blocks = []
            if len(req.ring):
                self.rings.free(req.ring.tolist())
                req.ring = np.zeros(0, np.int32)
            if self.metrics is not None:
                self.metrics.finished(req)

    def _emit(self, event: Event) -> None:
        req = event.request
        if req.on_event is None:
            return
        try:
            req.on_event(event)
        except Exception:  # noqa: BLE001 - a broken listener ends its own request only
            req.on_event = None
            if req.finish_reason is None:
                self.cancel(req)
