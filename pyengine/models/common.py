"""What every model builder shares: weight packing and the rotary tables."""

from __future__ import annotations

import functools

import numpy as np

from pyengine.formats import FORMATS, check_dtype, format_for, runs_as_stored, warn_widened
from pyengine.runtime.graph import Graph


def logged(method):
    """Records a public WeightPacker call and its result in packer.log (when it is a list):
    a family's prepare() reaches its weights only through these calls, in a fixed order, so the
    log replayed (pyengine.models.replay_packer) gives the same model without the checkpoint.
    Calls made by another logged call are part of it, not entries of their own."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if self.log is None or self._logging:
            return method(self, *args, **kwargs)
        self._logging = True
        try:
            result = method(self, *args, **kwargs)
        finally:
            self._logging = False
        self.log.append((method.__name__, call_key(args, kwargs), result))
        return result

    return call


def call_key(args, kwargs) -> list:
    """A logged call's arguments as JSON values (arrays by their shape), to check a replay
    asks for the same thing in the same order."""

    def value(a):
        if isinstance(a, np.ndarray):
            return {"shape": list(a.shape)}
        if isinstance(a, slice):
            return [a.start, a.stop, a.step]
        if isinstance(a, (list, tuple)):
            return [value(x) for x in a]
        return a

    return [value(a) for a in args] + [[k, value(v)] for k, v in sorted(kwargs.items())]


class WeightPacker:
    """Packs checkpoint tensors into native linear layers, once, in the format `dtype` gives
    each tensor (pyengine.formats), and drops the float32 copy the loader kept (the packed
    layout is all the kernels read). Block-stored tensors that run as stored are copied from
    the file's bytes, never widened. With record=True every call and its result is kept in
    `log` (what `pyengine pack` writes)."""

    def __init__(
        self, tensors, dtype: str = "float32", keep_reference: bool = False, record: bool = False
    ):
        self.log: list | None = [] if record else None
        self._logging = False
        self.tensors = tensors
        self.dtype = check_dtype(dtype)
        self.keep_reference = keep_reference
        # debug mode: id(layer) -> (weight, bias) as unpacked float32, for the numpy reference
        self.reference_by_linear: dict[int, tuple] = {}
        self.widened: dict[str, str] = {}  # name -> stored type "auto" could not run natively
        self.formats: dict[str, int] = {}  # format name -> layers packed in it
        self.layer_bytes: dict[int, int] = {}  # id(layer) -> bytes of its packed weight

    @logged
    def array(self, name: str) -> np.ndarray:
        """A float32 copy of `name` (never a view of the checkpoint's memory map, which is
        closed once packing is done). Callers must not write to it (a packed model's arrays
        are read-only views of its file)."""
        return np.array(self.tensors[name], dtype=np.float32, order="C", copy=True)

    @logged
    def stored_dtype(self, name: str) -> str:
        """The type the checkpoint stores `name` in ("F32", "BF16", "Q4_K", ...)."""
        stored = getattr(self.tensors, "stored_dtype", None)
        return stored(name) if stored is not None else "F32"

    def _raw(self, name: str) -> np.ndarray | None:
        """The stored blocks of `name` when it runs as stored under this dtype, else None."""
        if not runs_as_stored(self.dtype, self.stored_dtype(name)):
            return None
        raw = getattr(self.tensors, "raw", None)
        return raw(name) if raw is not None else None

    def _format(self, names: list[str]):
        stored = [self.stored_dtype(n) for n in names]
        fmt = format_for(self.dtype, stored[0])
        for n, t in zip(names, stored):
            if self.dtype == "auto" and t not in FORMATS and t not in ("F32", "F64", "F16", "BF16"):
                self.widened[n] = t
        if any(format_for(self.dtype, t) != fmt for t in stored[1:]):
            fmt = FORMATS["bfloat16"]  # mixed stored types in one fused product: widen them
        return fmt

    def _note(self, layer, fmt, weight, bias):
        self.formats[fmt.name] = self.formats.get(fmt.name, 0) + 1
        self.layer_bytes[id(layer)] = layer.packed_nbytes
        if self.keep_reference:
            ref_bias = None if bias is None else np.array(bias, np.float32)
            self.reference_by_linear[id(layer)] = (fmt.reference_weight(layer, weight), ref_bias)
        return layer

    @logged
    def linear(self, weight: np.ndarray, bias: np.ndarray | None = None, *, stored: str = "F32"):
        """A layer for a float32 weight [out, in] (a model-made product, e.g. fused)."""
        fmt = format_for(self.dtype, stored)
        bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        return self._note(fmt.from_float(weight, bias), fmt, weight, bias)

    @logged
    def linear_from(self, prefix: str, has_bias: bool):
        return self.linear_concat([prefix], has_bias)

    @logged
    def linear_concat(self, prefixes: list[str], has_bias: bool):
        """One layer whose output rows are those of prefixes' weights (and biases), stacked:
        fused q/k/v or gate/up products. Stored blocks are stacked as bytes."""
        names = [p + ".weight" for p in prefixes]
        fmt = self._format(names)
        bias = None
        if has_bias:
            bias = np.concatenate([self.array(p + ".bias") for p in prefixes])
        raws = [self._raw(n) for n in names] if fmt.quantized else [None]
        if fmt.quantized and all(r is not None for r in raws):
            in_features = self.tensors.shape(names[0])[1]
            layer = fmt.from_blocks(
                np.concatenate(raws) if len(raws) > 1 else raws[0], in_features, bias
            )
            weight = None
        else:
            weights = [self.array(n) for n in names]
            weight = np.concatenate(weights) if len(weights) > 1 else weights[0]
            layer = fmt.from_float(weight, bias)
        self.release(*names, *(p + ".bias" for p in prefixes))
        return self._note(layer, fmt, weight, bias)

    @logged
    def linear_split(self, prefix: str, sizes: list[int], has_bias: bool) -> list:
        """Layers for consecutive row blocks of one stored weight, `sizes` rows each (a fused
        qkv_proj split into q, k and v). Stored blocks are sliced as bytes: blocks run along
        a row, so a row range keeps them whole."""
        name = prefix + ".weight"
        fmt = self._format([name])
        raw = self._raw(name) if fmt.quantized else None
        weight = None if raw is not None else self.array(name)
        bias = self.array(prefix + ".bias") if has_bias else None
        in_features = self.tensors.shape(name)[1]
        layers, start = [], 0
        for n in sizes:
            rows = slice(start, start + n)
            start += n
            b = None if bias is None else np.ascontiguousarray(bias[rows])
            if raw is not None:
                w, layer = None, fmt.from_blocks(np.ascontiguousarray(raw[rows]), in_features, b)
            else:
                w = np.ascontiguousarray(weight[rows])
                layer = fmt.from_float(w, b)
            layers.append(self._note(layer, fmt, w, b))
        self.release(name, prefix + ".bias")
        return layers

    @logged
    def linear_conv1d(self, prefix: str, cols: slice | None = None):
        """A layer from a weight stored [in, out] with a bias (a Conv1D: GPT-2's config.json
        folders), of output columns `cols` (all when None)."""
        weight = self.tensors[prefix + ".weight"]
        bias = self.tensors[prefix + ".bias"]
        if cols is not None:
            weight, bias = weight[:, cols], bias[cols]
        return self.linear(weight.T, bias, stored=self.stored_dtype(prefix + ".weight"))

    @logged
    def embedding_and_head(self, tied: bool):
        """(embedding table, lm_head layer). A table stored in blocks that runs as stored stays
        in them and, when tied, is the LM head's weight too (one copy); otherwise the table is
        float32 and the head is packed from it (or from lm_head.weight)."""
        name = "model.embed_tokens.weight"
        head_name = name if tied else "lm_head.weight"
        fmt = self._format([head_name])
        if tied and fmt.quantized and self._raw(name) is not None:
            head = self.linear_from(name.removesuffix(".weight"), False)
            return head, head
        table = self.array(name)
        if tied:
            head = self.linear(table, stored=self.stored_dtype(name))
        else:
            head = self.linear_from("lm_head", False)
        return table, head

    def finish(self, source=None) -> None:
        """After packing: one warning for tensors "auto" had to widen; the checkpoint is let go
        (its memory map closes when nothing else holds it)."""
        warn_widened(self.widened, source or "checkpoint")
        self.tensors = None

    def release(self, *names: str) -> None:
        """Drops the loader's float32 copies (a plain dict of arrays loses the entries)."""
        release = getattr(self.tensors, "release", None) or self.tensors.pop
        for name in names:
            if name in self.tensors:
                release(name)


class RopeTable:
    """cos and sin of position * inv_freq, [rows, head_dim // 2] float32 each, computed in
    float64 for the positions run so far and grown (to at least twice its rows) when a call
    needs more. Precomputing the whole context at load would make a model that claims a
    context of millions of positions (or a file that says 2^31) cost gigabytes before it ran.
    Grown under the model's lock: calls on one model take turns."""

    INITIAL_ROWS = 4096

    def __init__(self, inv_freq: np.ndarray, max_positions: int, mscale: float = 1.0):
        self.inv_freq = np.asarray(inv_freq, np.float64)
        self.max_positions = int(max_positions)
        self.mscale = float(mscale)  # cos and sin multiplied by it (longrope's attention factor)
        self.cos = self.sin = np.zeros((0, self.inv_freq.size), np.float32)
        self.ensure(min(self.INITIAL_ROWS, self.max_positions))

    def ensure(self, rows: int) -> None:
        """At least `rows` rows (positions 0 .. rows - 1), never past the context unless a
        call asks for it (the kernel then refuses positions past the table's end)."""
        have = self.cos.shape[0]
        if rows <= have:
            return
        rows = max(rows, min(2 * have, self.max_positions))
        angles = np.outer(np.arange(rows, dtype=np.float64), self.inv_freq)
        m = self.mscale
        self.cos = (np.cos(angles) * m).astype(np.float32)
        self.sin = (np.sin(angles) * m).astype(np.float32)

    def lookup(self, state) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(table row of each token, cos, sin) for a run state: the row is the position."""
        return state.positions, *self.for_positions(state.positions)

    def for_positions(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin) covering every position in `positions` (when it is not empty)."""
        if positions.size:
            self.ensure(int(positions.max()) + 1)
        return self.cos, self.sin


def add_lm_head(g: Graph, x: str, lm_head, vocab: int, logits: str) -> None:
    """Final projection to the vocabulary: of every position (logits="all", buffer [T, vocab])
    or of each sequence's last position only (logits="last", [B, vocab]: generation)."""
    if logits == "all":
        g.add("linear", [x], g.buffer("logits", vocab), "lm_head", linear=lm_head)
        return
    last = g.buffer("x_last", g.buffers[x].width, per_sequence=True)
    g.add("last_token", [x], last, "last_token")
    logits_buf = g.buffer("logits", vocab, per_sequence=True)
    g.add("linear", [last], logits_buf, "lm_head", linear=lm_head)


def add_attention(
    g: Graph,
    prefix: str,
    layer: int,
    x: str,
    lw: dict,
    cfg,
    rope_table,
    *,
    window: int = 0,
    scale: float | None = None,
    softcap: float = 0.0,
    qk_norm_eps: float | None = None,
) -> str:
    """The attention half of a pre-norm decoder block on x (the normed activations): q, k, v
    projections (lw["q"], lw["k"], lw["v"]), per-head RMSNorm of q and k when lw holds
    "q_norm" and "k_norm" (Qwen3, Gemma 3), rotary positions from `rope_table` (rotate-half),
    the KV write and causal attention with this layer's window (keys per query, 0: all),
    score scale (None: 1/sqrt(head_dim)) and soft-cap (0: none). Returns the buffer holding
    the attention output [T, heads * head_dim], before the output projection."""
    nh, nkv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    q, k, v = g.buffer("q", nh * hd), g.buffer("k", nkv * hd), g.buffer("v", nkv * hd)
    attn = g.buffer("attn", nh * hd)
    g.add("linear", [x], q, prefix + "q_proj", linear=lw["q"])
    g.add("linear", [x], k, prefix + "k_proj", linear=lw["k"])
    g.add("linear", [x], v, prefix + "v_proj", linear=lw["v"])
    if lw.get("q_norm") is not None:
        eps = cfg.norm_eps if qk_norm_eps is None else qk_norm_eps
        g.add("rms_norm", [q], q, prefix + "q_norm", weight=lw["q_norm"], eps=eps, heads=nh)
        g.add("rms_norm", [k], k, prefix + "k_norm", weight=lw["k_norm"], eps=eps, heads=nkv)
    rope = {"table": rope_table, "interleaved": False}
    g.add("rope", [q], q, prefix + "rope_q", heads=nh, **rope)
    g.add("rope", [k], k, prefix + "rope_k", heads=nkv, **rope)
    cache = g.cache(layer)
    g.add("kv_write", [k, v], cache, prefix + "kv_write", layer=layer, kv_heads=nkv)
    g.add(
        "attention",
        [q, cache],
        attn,
        prefix + "attention",
        layer=layer,
        heads=nh,
        causal=True,
        window=int(window or 0),
        scale=scale,
        softcap=float(softcap or 0.0),
    )
    return attn


def build_gated_decoder(cfg, w: dict, logits: str, layer_windows) -> Graph:
    """The Llama block's graph (Llama, Mistral, Qwen2, Qwen3, Phi-3) over prepared weights:
    w["embed"], w["layers"][i] with input_norm, q, k, v (q_norm, k_norm when present), o,
    post_norm, gate_up and down, then w["final_norm"], w["lm_head"], w["rope"]; layer i sees
    the last layer_windows[i] keys (0: all). Per layer, on activations [T, hidden]:
        x  = rms_norm(h) * input_norm;  h += attention(x) @ Wo      (residual in the epilogue)
        x  = rms_norm(h) * post_norm;   h += swiglu(x @ [Wgate; Wup]^T) @ Wdown^T"""
    g = Graph()
    eps = cfg.norm_eps
    h, x = g.buffer("h", cfg.hidden_size), g.buffer("x", cfg.hidden_size)
    gate_up = g.buffer("gate_up", 2 * cfg.intermediate_size)
    act = g.buffer("act", cfg.intermediate_size)
    g.add("embed", [], h, "embed_tokens", table=w["embed"])
    for i, lw in enumerate(w["layers"]):
        n = f"L{i}."
        g.add("rms_norm", [h], x, n + "input_norm", weight=lw["input_norm"], eps=eps)
        attn = add_attention(g, n, i, x, lw, cfg, w["rope"], window=layer_windows[i])
        g.add("linear", [attn, h], h, n + "o_proj+residual", linear=lw["o"])
        g.add("rms_norm", [h], x, n + "post_norm", weight=lw["post_norm"], eps=eps)
        g.add("linear", [x], gate_up, n + "gate_up_proj", linear=lw["gate_up"])
        g.add("swiglu", [gate_up], act, n + "swiglu")
        g.add("linear", [act, h], h, n + "down_proj+residual", linear=lw["down"])
    g.add("rms_norm", [h], x, "final_norm", weight=w["final_norm"], eps=eps)
    add_lm_head(g, x, w["lm_head"], cfg.vocab_size, logits)
    return g
