"""Encoder workloads: sentence embeddings of fixed-length token batches (the model's work,
tokenization excluded for every engine alike): pyengine (one model per weight dtype) next to
sentence-transformers on torch (fp32, and bf16 as "torch-bf16") and ONNX Runtime on an ONNX
export (dynamic axes, all graph optimizations), each pinned to the same thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import pyengine
from pyengine.bench.dtypes import coarsest_format, dtype_notes, load_models, workload_label
from pyengine.bench.peers import default_peers, peer_threads
from pyengine.bench.results import Result
from pyengine.bench.timing import Timing, measure
from pyengine.formats import FORMATS, WeightFormat
from pyengine.models.pooling import l2_normalize, pool

# "auto" on a float32 checkpoint (all-MiniLM-L6-v2) is float32: run it by --dtypes where a
# checkpoint stores something else (load_models folds it into the dtype it amounts to).
DEFAULT_DTYPES = ("float32", "bfloat16", "int8")
WORKLOADS = [("throughput", 32, 128), ("latency", 1, 16), ("latency", 1, 128)]
QUICK_WORKLOADS = [("throughput", 8, 32), ("latency", 1, 16)]

# Every engine must compute the same embeddings before it is timed, or a ratio means nothing.
# float32 weights on both sides: the same sums in another order, so entries agree to 1e-4.
FP32_MAX_ABS_DIFF = 1e-4
# Rounded weights move every entry (bf16, all-MiniLM-L6-v2: max abs diff 1.4e-3), so an
# absolute bound would be arbitrary. Sentence embeddings are used by their direction (MiniLM's
# are L2-normalized, compared by cosine), which each weight format must keep: a budget for
# 1 - cosine against exact float32, per sentence, by the format's bits per weight:
#   bf16 (8 significant bits; MiniLM: <= 2.1e-5, torch bf16 <= 1.3e-4):               1e-3
#   8-bit blocks (Q8_0: 127 levels per 32 values, the activations too on few-row
#   products: about 7x bf16's error per value, 50x in 1 - cosine; MiniLM <= 6.5e-4):  1e-2
#   4-bit blocks (Q4_0: 16 levels, 10x Q8_0's error per value; MiniLM 0.04 to 0.09):   0.3
# Two engines that both round are off by the sum of their angles (1 - cos ~ angle^2 / 2).
COSINE_BUDGETS = ((16, 1e-3), (8, 1e-2), (0, 0.3))  # (at least bits per weight, budget)


def cosine_budget(fmt: WeightFormat) -> float:
    """How far (1 - cosine) `fmt`'s rounding may turn an embedding from exact float32's."""
    if fmt.name == "float32":
        return 0.0
    return next(b for bits, b in COSINE_BUDGETS if fmt.bits_per_weight >= bits)


def token_batch(batch: int, length: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """[CLS] random ids [SEP], no padding: the shape is what the benchmark controls."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab - 1, (batch, length)).astype(np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }


def pyengine_embed(model, feats) -> np.ndarray:
    hidden = model.forward(feats["input_ids"], feats["attention_mask"], feats["token_type_ids"])
    pooled = pool(hidden, feats["attention_mask"], model.pooling_modes)
    return l2_normalize(pooled) if model.normalize else pooled


class TorchPeer:
    """sentence-transformers' own modules (Transformer, Pooling, Normalize) on torch, the
    transformer loaded in `dtype` ("float32": peer "torch", "bfloat16": peer "torch-bf16")."""

    def __init__(self, folder: Path, dtype: str = "float32"):
        import torch
        from sentence_transformers import SentenceTransformer

        self.name = "torch" if dtype == "float32" else "torch-bf16"
        self.format = FORMATS[dtype]
        kwargs = {"torch_dtype": getattr(torch, dtype)}
        self.model = SentenceTransformer(str(folder), device="cpu", model_kwargs=kwargs).eval()

    def embed(self, feats) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = {k: torch.from_numpy(v) for k, v in feats.items()}
            return self.model(batch)["sentence_embedding"].float().numpy()


class OnnxRuntimePeer:
    """The transformer exported to ONNX with dynamic batch and sequence axes (torch.export
    based exporter), run by ONNX Runtime with every graph optimization, pooled and normalized
    in numpy like pyengine. int8=True: the export quantized by ONNX Runtime's own
    `quantize_dynamic` (int8 weights per tensor, activations quantized per call: ONNX Runtime's
    int8 path at its best on a CPU without VNNI), the peer of pyengine's int8 rows."""

    def __init__(
        self,
        folder: Path,
        workdir: Path,
        threads: int,
        pooling_modes,
        normalize,
        *,
        int8: bool = False,
    ):
        import onnxruntime as ort

        self.name = "onnxruntime-int8" if int8 else "onnxruntime"
        self.format = FORMATS["Q8_0" if int8 else "float32"]
        # quantize_dynamic quantizes activations per tensor: on the bench's random-token
        # batches its embeddings are at cosine 0.86-0.92 to float32's (measured, all-MiniLM-L6-v2
        # 1x16 to 32x128), so its budget (1 - cosine) is 0.2, not an 8-bit weight format's 1e-2
        self.cosine_budget = 0.2 if int8 else None
        self.pooling_modes, self.normalize = pooling_modes, normalize
        path = workdir / "encoder.onnx"
        if not path.exists():
            export_onnx(folder, path)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = workdir / "encoder-int8.onnx"
            if not quantized.exists():
                quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
            path = quantized
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def embed(self, feats) -> np.ndarray:
        hidden = self.session.run(None, feats)[0]
        pooled = pool(hidden, feats["attention_mask"], self.pooling_modes)
        return l2_normalize(pooled) if self.normalize else pooled


def export_onnx(folder: Path, path: Path) -> None:
    import torch
    import transformers

    hf = transformers.AutoModel.from_pretrained(str(folder)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    feats = {k: torch.from_numpy(v) for k, v in token_batch(2, 16, 30000).items()}
    batch, seq = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("seq", min=2, max=512)
    dims = {name: {0: batch, 1: seq} for name in feats}
    torch.onnx.export(
        Hidden(hf).eval(),  # the wrapper too: no dropout, and no training-mode export warning
        tuple(feats.values()),
        str(path),
        input_names=list(feats),
        output_names=["last_hidden_state"],
        dynamic_shapes=dims,
        dynamo=True,
    )


def check_agreement(
    peer: str,
    theirs: np.ndarray,
    ours: np.ndarray,
    our_format: WeightFormat,
    their_format: WeightFormat = FORMATS["float32"],
    their_budget: float | None = None,
) -> None:
    """Raises unless pyengine, whose coarsest weights are `our_format`, computes the peer's
    embeddings [batch, dim] (its weights in `their_format`, or its own stated budget) within
    what the two roundings allow: 1e-4 per entry when neither rounds, else each sentence's
    cosine similarity."""
    their = cosine_budget(their_format) if their_budget is None else their_budget
    budgets = cosine_budget(our_format), their
    if budgets == (0.0, 0.0):
        diff = float(np.abs(theirs - ours).max())
        if not diff <= FP32_MAX_ABS_DIFF:  # NaN fails too
            raise AssertionError(f"{peer} disagrees with pyengine (float32 weights) by {diff}")
        return
    min_cosine = 1.0 - (np.sqrt(budgets[0]) + np.sqrt(budgets[1])) ** 2
    a, b = theirs.astype(np.float64), ours.astype(np.float64)
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    worst = float(cosine.min())
    if not worst >= min_cosine:  # NaN fails too
        raise AssertionError(
            f"{peer} ({their_format.name} weights) disagrees with pyengine ({our_format.name} "
            f"weights): cosine similarity {worst:.6f} < {min_cosine:.6f}"
        )


def time_embed(fn, feats, repeat: int) -> Timing:
    return measure(lambda: fn(feats), repeat=repeat, min_seconds=0.2)


def run(
    folder: Path,
    threads_list,
    *,
    dtypes=DEFAULT_DTYPES,
    models=None,
    peers=None,
    quick=False,
    repeat=7,
    workdir: Path | None = None,
    progress=None,
) -> list[Result]:
    """all-MiniLM-L6-v2-style workloads: throughput in sentences/s, batch-1 latency in ms, for
    the encoder in `folder` (a sentence-transformers or Hugging Face folder): one pyengine model
    per weight dtype in `dtypes` (`models` may hold ready ones, {dtype: model}; the others are
    loaded from `folder`). `peers`: of "torch", "torch-bf16", "onnxruntime", "onnxruntime-int8"
    (default: those installed, torch-bf16 only on a CPU with bf16 hardware). Each peer is
    measured once per workload and thread count and its samples appear in every dtype's
    Result."""
    import tempfile

    peers = default_peers("encoder") if peers is None else peers
    models = load_models(
        folder, dtypes, models, progress=progress, message=f"encoder: loading {Path(folder).name}"
    )
    first = next(iter(models.values()))
    workdir = workdir or Path(tempfile.mkdtemp(prefix="pyengine-bench-"))
    torch_peers = [
        TorchPeer(folder, dtype)
        for dtype, name in (("float32", "torch"), ("bfloat16", "torch-bf16"))
        if name in peers
    ]
    formats = {dtype: coarsest_format(model) for dtype, model in models.items()}
    results = []
    for threads in threads_list:
        engines = {p.name: p for p in torch_peers}
        for name in ("onnxruntime", "onnxruntime-int8"):
            if name in peers:
                if progress:
                    progress(f"encoder: exporting to ONNX ({name})")
                engines[name] = OnnxRuntimePeer(
                    folder,
                    workdir,
                    threads,
                    first.pooling_modes,
                    first.normalize,
                    int8=name.endswith("int8"),
                )
        for kind, batch, length in QUICK_WORKLOADS if quick else WORKLOADS:
            label = f"{first.config.architecture} {kind} {batch}x{length}"
            if progress:
                progress(f"encoder: {label}, {threads} thread(s)")
            feats = token_batch(batch, length, first.config.vocab_size)
            previous = pyengine.get_num_threads()
            pyengine.set_num_threads(threads)
            try:
                with peer_threads(threads):
                    theirs = {name: p.embed(feats) for name, p in engines.items()}
                    for dtype, model in models.items():
                        ours = pyengine_embed(model, feats)
                        for name, out in theirs.items():
                            engine = engines[name]
                            check_agreement(
                                name,
                                out,
                                ours,
                                formats[dtype],
                                engine.format,
                                getattr(engine, "cosine_budget", None),
                            )
                    # the peers, once: their sample lists are shared by every dtype's Result
                    peer_samples = {
                        name: time_embed(p.embed, feats, repeat).samples
                        for name, p in engines.items()
                    }
                    timings = {
                        dtype: time_embed(lambda f, m=model: pyengine_embed(m, f), feats, repeat)
                        for dtype, model in models.items()
                    }
            finally:
                pyengine.set_num_threads(previous)
            for dtype, timing in timings.items():
                model = models[dtype]
                samples = {"pyengine": timing.samples, **peer_samples}
                unit, work = ("sent/s", batch) if kind == "throughput" else ("ms", 1)
                results.append(
                    Result(
                        "encoder",
                        workload_label(label, dtype, model),
                        threads,
                        unit,
                        work,
                        samples,
                        notes=dtype_notes(dtype, peer_samples, model),
                    )
                )
    return results
