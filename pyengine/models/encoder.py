"""EncoderModel: BERT-family sentence embeddings, the sentence-transformers pipeline on
pyengine's kernels: tokenize (truncated to max_seq_length), encode, pool, normalize."""

from __future__ import annotations

import numpy as np

from pyengine.loaders import ModelConfig, UnsupportedModelError
from pyengine.models import bert
from pyengine.models.common import WeightPacker
from pyengine.models.pooling import MODES, l2_normalize, pool
from pyengine.runtime.debug import run_checked
from pyengine.runtime.model_lock import ModelLock
from pyengine.runtime.planner import KVCache, Plan, PlanCache, RunState, make_plan

# sentence-transformers modules this pipeline implements
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


class EncoderModel:
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
        source = (extras or {}).get("source", "the model")
        names = [f.name for f in bert.FAMILIES]
        if config.architecture not in names:
            raise UnsupportedModelError(
                f"{source}: architecture {config.architecture!r} is not a supported encoder "
                f"(supported: {', '.join(names)})"
            )
        self.config = config
        self.tokenizer = tokenizer
        self.extras = dict(extras or {})
        self.debug = debug
        st = self.extras.get("sentence_transformers") or {}
        for module in st.get("modules", []):
            if module.rsplit(".", 1)[-1] not in _SUPPORTED_MODULES:
                raise UnsupportedModelError(
                    f"{source}: sentence-transformers module {module!r} is not "
                    "supported (Transformer, Pooling, Normalize are)"
                )
        pooling = st.get("pooling") or {"modes": ["mean_tokens"]}
        self.pooling_modes = tuple(pooling["modes"])
        if not self.pooling_modes or not set(self.pooling_modes) <= set(MODES):
            raise UnsupportedModelError(
                f"{source}: sentence-transformers pooling "
                f"modes {list(self.pooling_modes)} are not supported (one or more of {MODES})"
            )
        self.normalize = bool(st.get("normalize", False))
        limit = self.extras.get("max_seq_length") or config.max_position_embeddings
        self.max_seq_length = min(
            int(limit), config.max_position_embeddings - config.position_offset
        )
        self.dtype = dtype
        # packer: a recording WeightPacker (pyengine pack) or a pack file's ReplayPacker
        self._packer = packer or WeightPacker(tensors, dtype=dtype, keep_reference=debug)
        self._weights = bert.prepare(config, self._packer)
        self._packer.finish(self.extras.get("source"))
        self._graph = bert.build(config, self._weights)
        self._plans = PlanCache(capacity=8)
        # Plans are shared by every call: one forward runs at a time.
        self.lock = ModelLock("model")

    @property
    def dim(self) -> int:
        return self.config.hidden_size * len(self.pooling_modes)

    def _plan(self, batch: int, seq: int) -> Plan:
        def make():
            cfg = self.config
            scratch = KVCache.allocate(1, batch, cfg.num_heads, seq, cfg.head_dim)
            return make_plan(self._graph, RunState(batch, seq, scratch))

        return self._plans.get((batch, seq), make)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> np.ndarray:
        """Last hidden states [batch, seq, hidden] float32. attention_mask: 1 for real tokens,
        0 for padding, which must be on the right (as tokenizers pad)."""
        ids = np.asarray(input_ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"input_ids must hold integer token ids, got dtype {ids.dtype}")
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"input_ids must be [batch, seq] with seq >= 1, got {ids.shape}")
        batch, seq = ids.shape
        positions = self.config.max_position_embeddings - self.config.position_offset
        if seq > positions:
            raise ValueError(f"sequence of {seq} tokens exceeds the model's {positions} positions")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise ValueError(
                f"input_ids holds token id {bad}, outside the vocabulary "
                f"[0, {self.config.vocab_size})"
            )
        mask = np.asarray(attention_mask)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask must have shape {ids.shape}, got {mask.shape}")
        lengths = mask.astype(bool).sum(axis=1)
        if not (mask.astype(bool) == (np.arange(seq)[None, :] < lengths[:, None])).all():
            raise ValueError("attention_mask must be 1s followed by 0s (right padding)")
        types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
        if types.shape != ids.shape:
            raise ValueError(f"token_type_ids must have shape {ids.shape}, got {types.shape}")
        n_types = max(self.config.type_vocab_size, 1)
        if types.size and (types.min() < 0 or types.max() >= n_types):
            raise ValueError(f"token_type_ids must be in [0, {n_types})")
        with self.lock.held():
            return self._run(ids, types, lengths)

    def _run(self, ids, types, lengths) -> np.ndarray:
        batch, seq = ids.shape
        plan = self._plan(batch, seq)
        st = plan.state
        st.ids[...] = ids
        st.type_ids[...] = types
        st.positions[...] = np.arange(seq)[None, :] + self.config.position_offset
        st.start_pos = 0
        st.key_begin[...] = 0
        # Every row attends to its real tokens only; an all-padding row sees one key (its
        # output is discarded by pooling anyway).
        st.key_end[...] = np.maximum(lengths, 1)
        if self.debug:
            self.debug_report = run_checked(plan, self._packer.reference_by_linear)
        else:
            plan.run()
        return plan.buffers["h"].reshape(batch, seq, -1).copy()

    def encode(
        self,
        texts,
        batch_size: int = 32,
        normalize: bool | None = None,
        output: str = "numpy",
        progress=None,
    ):
        """Sentence embeddings: [n, dim] float32 for a list of texts, [dim] for one string.

        Texts are sorted by token length and batched so each batch pads only to its own
        longest member; results come back in input order. normalize=None follows the model
        folder (a Normalize module); output "numpy" or "list". progress: called with the
        number of texts done after each batch.
        """
        single = isinstance(texts, str)
        items = [texts] if single else texts
        if items is None or isinstance(items, (bytes, dict)) or not hasattr(items, "__len__"):
            raise TypeError("texts must be a string or a list of strings")
        items = list(items)
        if not items:
            raise ValueError("texts is empty")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if output not in ("numpy", "list"):
            raise ValueError(f"output must be 'numpy' or 'list', got {output!r}")
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer")
        result = self.embed_encodings(self.tokenize(items), batch_size, normalize, progress)
        out = result[0] if single else result
        return out.tolist() if output == "list" else out

    def embed_encodings(self, encodings, batch_size=32, normalize=None, progress=None):
        """encode() of texts already tokenized by this model (tokenizers Encodings): [n, dim].
        For callers that need the encodings too (the server counts their tokens)."""
        order = np.argsort([-len(e) for e in encodings], kind="stable")
        result = np.zeros((len(encodings), self.dim), np.float32)
        for start in range(0, len(encodings), batch_size):
            idx = order[start : start + batch_size]
            longest = max(len(encodings[i]) for i in idx)
            ids = np.zeros((len(idx), longest), np.int32)
            types = np.zeros_like(ids)
            mask = np.zeros_like(ids)
            for r, i in enumerate(idx):
                e = encodings[i]
                ids[r, : len(e)], types[r, : len(e)], mask[r, : len(e)] = e.ids, e.type_ids, 1
            hidden = self.forward(ids, mask, types)
            result[idx] = pool(hidden, mask, self.pooling_modes)
            if progress is not None:
                progress(min(start + batch_size, len(encodings)))
        if self.normalize if normalize is None else normalize:
            result = l2_normalize(result)
        return result

    def tokenize(self, texts):
        """The model's tokenizer on a list of texts, truncated to max_seq_length."""
        tok = self.tokenizer
        tok.enable_truncation(max_length=self.max_seq_length)
        return tok.encode_batch(texts)
