"""pyengine on Ray (the optional extra `.[ray]`): the OpenAI-compatible routes as a Ray Serve
application, and an embedding step for Ray Data.

    app = pyengine.ray.deployment("smollm2-135m-instruct", num_replicas=2, threads_per_replica=1)
    ray.serve.run(app)                         # the routes of `pyengine serve`, on each replica

    ds = ds.map_batches(pyengine.ray.Embedder, fn_constructor_kwargs={"model":
                        "all-minilm-l6-v2", "threads": 1}, concurrency=2, batch_size=256)

Threads. Each replica (or Embedder actor) runs pyengine's kernel pool with exactly `threads`
threads and asks Ray for that many CPUs, so Ray places no more of them on a machine than it has
cores. This has to be explicit: Ray does not pin actors to cores, and pyengine's pool would
otherwise size itself from the process's affinity mask, i.e. every core of the machine, in every
replica. (Ray sets OMP_NUM_THREADS from num_cpus; pyengine does not read it.)

Weights. Given a GGUF or a folder, each replica loads and packs its own copy: N replicas on one
machine hold N copies. Given a pack file (`pyengine pack MODEL --out FILE`, pyengine.pack), the
replicas map it read-only: one copy in the page cache for all of them, and no repacking at start.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def deployment(
    model: str,
    dtype: str = "auto",
    num_replicas: int = 1,
    threads_per_replica: int | None = None,
    *,
    embedding_model: str | None = None,
    model_name: str | None = None,
    autoscaling_config: dict | None = None,
    ray_actor_options: dict | None = None,
    **engine_options,
):
    """A Ray Serve application (bind()-ed deployment) serving `model` with the routes of
    `pyengine serve`: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
    /health, /metrics. One engine per replica.

    threads_per_replica: kernel threads in each replica, and the CPUs each asks Ray for
        (default 1). autoscaling_config: passed to Ray Serve as it is (then num_replicas is
        not used). engine_options: kv_cache_gb, max_batch, max_queue, deterministic, ... as
        for `pyengine serve`.
    """
    from ray import serve

    from pyengine.serve.app import load_app

    threads = int(threads_per_replica or 1)
    if threads < 1:
        raise ValueError(f"threads_per_replica must be >= 1, got {threads_per_replica}")
    name = model_name or str(model)

    def build_app():  # runs in each replica, as it starts
        return load_app(
            model,
            dtype=dtype,
            threads=threads,
            embedding_model=embedding_model,
            model_name=name,
            **engine_options,
        )

    @serve.ingress(build_app)
    class PyengineServer:
        """One replica: the app build_app returns, its engine thread started by the app's
        lifespan."""

    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": threads, **(ray_actor_options or {})}
    }
    if autoscaling_config is not None:
        options["autoscaling_config"] = autoscaling_config
    else:
        options["num_replicas"] = int(num_replicas)
    return serve.deployment(PyengineServer, name="pyengine", **options).bind()


def serve_on_ray(model, replicas, threads, host, port, **options) -> None:
    """`pyengine serve --ray`: a local Ray instance (or the cluster RAY_ADDRESS names), the
    deployment on it, HTTP on host:port, until interrupted."""
    import time

    import ray
    from ray import serve

    ray.init(ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    serve.run(deployment(model, num_replicas=replicas, threads_per_replica=threads, **options))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


class Embedder:
    """A Ray Data batch mapper: reads the `text` column, adds an `embedding` column ([n, dim]
    float32), as the model's `encode()` would in one process.

    model, dtype: as for pyengine.load; threads: kernel threads in this actor (ask Ray for as
    many CPUs: map_batches(..., num_cpus=threads)).
    """

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        dtype: str = "auto",
        threads: int = 1,
        text_column: str = "text",
        embedding_column: str = "embedding",
    ):
        import pyengine

        self.model = pyengine.load(model, dtype=dtype, threads=threads)
        if not hasattr(self.model, "encode"):
            raise ValueError(f"{model} is not an encoder: it has no encode()")
        self.text_column, self.embedding_column = text_column, embedding_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise KeyError(f"the batch has no {self.text_column!r} column: {sorted(batch)}")
        texts = [str(t) for t in batch[self.text_column]]
        return {**batch, self.embedding_column: self.model.encode(texts)}
