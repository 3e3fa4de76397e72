"""Encoder workloads: sentence embeddings of fixed-length token batches (the model's work,
tokenization excluded for every engine alike): pyengine next to sentence-transformers on torch
fp32 and ONNX Runtime on an ONNX export (dynamic axes, all graph optimizations), each pinned to
the same thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import pyengine
from pyengine.bench.peers import peer_threads
from pyengine.bench.results import Result
from pyengine.bench.timing import Timing, measure
from pyengine.models.pooling import l2_normalize, pool

WORKLOADS = [("throughput", 32, 128), ("latency", 1, 16), ("latency", 1, 128)]
QUICK_WORKLOADS = [("throughput", 8, 32), ("latency", 1, 16)]


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


def time_embed(fn, feats, repeat: int) -> Timing:
    return measure(lambda: fn(feats), repeat=repeat, min_seconds=0.2)


def run(
    model,
    folder: Path,
    threads_list,
    *,
    peers=("torch", "onnxruntime"),
    quick=False,
    repeat=7,
    workdir: Path | None = None,
    progress=None,
) -> list[Result]:
    """all-MiniLM-L6-v2-style workloads: throughput in sentences/s, batch-1 latency in ms."""
    import tempfile

    workdir = workdir or Path(tempfile.mkdtemp(prefix="pyengine-bench-"))
    torch_peer = TorchPeer(folder) if "torch" in peers else None
    results = []
    for threads in threads_list:
        engines = {"pyengine": lambda f: pyengine_embed(model, f)}
        if "torch" in peers:
            engines["torch"] = torch_peer.embed
        if "onnxruntime" in peers:
            if progress:
                progress("encoder: exporting to ONNX")
            engines["onnxruntime"] = OnnxRuntimePeer(
                folder, workdir, threads, model.pooling_modes, model.normalize
            ).embed
        for kind, batch, length in QUICK_WORKLOADS if quick else WORKLOADS:
            label = f"{model.config.architecture} {kind} {batch}x{length}"
            if progress:
                progress(f"encoder: {label}, {threads} thread(s)")
            feats = token_batch(batch, length, model.config.vocab_size)
            samples = {}
            previous = pyengine.get_num_threads()
            pyengine.set_num_threads(threads)
            try:
                with peer_threads(threads):
                    ours = engines["pyengine"](feats)
                    for name, fn in engines.items():
                        diff = float(np.abs(fn(feats) - ours).max())
                        if diff > 1e-4:  # the same embeddings, or the comparison means nothing
                            raise AssertionError(f"{name} disagrees with pyengine by {diff}")
                        samples[name] = time_embed(fn, feats, repeat).samples
            finally:
                pyengine.set_num_threads(previous)
            if kind == "throughput":
                results.append(Result("encoder", label, threads, "sent/s", batch, samples))
            else:
                results.append(Result("encoder", label, threads, "ms", 1, samples))
    return results
