"""Encoder workloads: sentence embeddings of fixed-length token batches (the model's work,
tokenization excluded for every engine alike): pyengine (one model per weight dtype) next to
sentence-transformers on torch fp32 and ONNX Runtime on an ONNX export (dynamic axes, all graph
optimizations), each pinned to the same thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import pyengine
from pyengine.api import DTYPES
from pyengine.bench.dtypes import dtype_notes, load_models, workload_label
from pyengine.bench.peers import peer_threads
from pyengine.bench.results import Result
from pyengine.bench.timing import Timing, measure
from pyengine.models.pooling import l2_normalize, pool

WORKLOADS = [("throughput", 32, 128), ("latency", 1, 16), ("latency", 1, 128)]
QUICK_WORKLOADS = [("throughput", 8, 32), ("latency", 1, 16)]

# Every engine must compute the same embeddings before it is timed, or a ratio means nothing.
# float32 weights: the same sums in another order, so entries agree to 1e-4.
FP32_MAX_ABS_DIFF = 1e-4
# bfloat16 weights keep 8 significant bits, so entries move by about 1e-3 (all-MiniLM-L6-v2:
# max abs diff 1.4e-3) and an absolute bound would be arbitrary. Sentence embeddings are used
# by their direction (MiniLM's are L2-normalized, compared by cosine), which bf16 must keep:
# each sentence's cosine similarity to the float32 engines' (all-MiniLM-L6-v2: 1 - cos <= 3e-5).
BF16_MIN_COSINE = 0.999


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
    """sentence-transformers' own modules (Transformer, Pooling, Normalize) on torch."""

    name = "torch"

    def __init__(self, folder: Path):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device="cpu").eval()

    def embed(self, feats) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = {k: torch.from_numpy(v) for k, v in feats.items()}
            return self.model(batch)["sentence_embedding"].numpy()


class OnnxRuntimePeer:
    """The transformer exported to ONNX with dynamic batch and sequence axes (torch.export
    based exporter), run by ONNX Runtime with every graph optimization, pooled and normalized
    in numpy like pyengine."""

    name = "onnxruntime"

    def __init__(self, folder: Path, workdir: Path, threads: int, pooling_modes, normalize):
        import onnxruntime as ort

        self.pooling_modes, self.normalize = pooling_modes, normalize
        path = workdir / "encoder.onnx"
        if not path.exists():
            export_onnx(folder, path)
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
        Hidden(hf),
        tuple(feats.values()),
        str(path),
        input_names=list(feats),
        output_names=["last_hidden_state"],
        dynamic_shapes=dims,
        dynamo=True,
    )


def check_agreement(peer: str, theirs: np.ndarray, ours: np.ndarray, dtype: str) -> None:
    """Raises unless pyengine with `dtype` weights computes the peer's (float32) embeddings
    [batch, dim], within that dtype's tolerance."""
    if dtype == "float32":
        diff = float(np.abs(theirs - ours).max())
        if not diff <= FP32_MAX_ABS_DIFF:  # NaN fails too
            raise AssertionError(f"{peer} disagrees with pyengine (float32 weights) by {diff}")
        return
    a, b = theirs.astype(np.float64), ours.astype(np.float64)
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    worst = float(cosine.min())
    if not worst >= BF16_MIN_COSINE:  # NaN fails too
        raise AssertionError(
            f"{peer} disagrees with pyengine ({dtype} weights): cosine similarity {worst:.6f} "
            f"< {BF16_MIN_COSINE}"
        )


def time_embed(fn, feats, repeat: int) -> Timing:
    return measure(lambda: fn(feats), repeat=repeat, min_seconds=0.2)


def run(
    folder: Path,
    threads_list,
    *,
    dtypes=DTYPES,
    models=None,
    peers=("torch", "onnxruntime"),
    quick=False,
    repeat=7,
    workdir: Path | None = None,
    progress=None,
) -> list[Result]:
    """all-MiniLM-L6-v2-style workloads: throughput in sentences/s, batch-1 latency in ms, for
    the encoder in `folder` (a sentence-transformers or Hugging Face folder): one pyengine model
    per weight dtype in `dtypes` (`models` may hold ready ones, {dtype: model}; the others are
    loaded from `folder`). Each peer is measured once per workload and thread count and its
    samples appear in every dtype's Result."""
    import tempfile

    models = load_models(
        folder, dtypes, models, progress=progress, message=f"encoder: loading {Path(folder).name}"
    )
    first = next(iter(models.values()))
    workdir = workdir or Path(tempfile.mkdtemp(prefix="pyengine-bench-"))
    torch_peer = TorchPeer(folder) if "torch" in peers else None
    results = []
    for threads in threads_list:
        engines = {}
        if "torch" in peers:
            engines["torch"] = torch_peer.embed
        if "onnxruntime" in peers:
            if progress:
                progress("encoder: exporting to ONNX")
            engines["onnxruntime"] = OnnxRuntimePeer(
                folder, workdir, threads, first.pooling_modes, first.normalize
            ).embed
        for kind, batch, length in QUICK_WORKLOADS if quick else WORKLOADS:
            label = f"{first.config.architecture} {kind} {batch}x{length}"
            if progress:
                progress(f"encoder: {label}, {threads} thread(s)")
            feats = token_batch(batch, length, first.config.vocab_size)
            previous = pyengine.get_num_threads()
            pyengine.set_num_threads(threads)
            try:
                with peer_threads(threads):
                    theirs = {name: fn(feats) for name, fn in engines.items()}
                    for dtype, model in models.items():
                        ours = pyengine_embed(model, feats)
                        for name, out in theirs.items():
                            check_agreement(name, out, ours, dtype)
                    # the peers, once: their sample lists are shared by every dtype's Result
                    peer_samples = {
                        name: time_embed(fn, feats, repeat).samples for name, fn in engines.items()
                    }
                    timings = {
                        dtype: time_embed(lambda f, m=model: pyengine_embed(m, f), feats, repeat)
                        for dtype, model in models.items()
                    }
            finally:
                pyengine.set_num_threads(previous)
            for dtype, timing in timings.items():
                samples = {"pyengine": timing.samples, **peer_samples}
                unit, work = ("sent/s", batch) if kind == "throughput" else ("ms", 1)
                results.append(
                    Result(
                        "encoder",
                        workload_label(label, dtype),
                        threads,
                        unit,
                        work,
                        samples,
                        notes=dtype_notes(dtype, peer_samples),
                    )
                )
    return results
