"""pyengine on a local Ray cluster (ray.init(num_cpus=2)): two replicas x one thread answer
concurrent chat requests through Ray Serve's HTTP proxy (loopback only); a Ray Data job embeds
2,000 texts with pyengine.ray.Embedder, equal to encode() in this process; a replica killed
while it loads is replaced, and clients meanwhile get answers or clean errors, never a hang."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
from ray import serve  # noqa: E402

import pyengine  # noqa: E402
import pyengine.ray as pr  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
import fuzz_seeds  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance whose workers import the pyengine these tests run: Ray puts the
    driver's working directory on its workers' path, where a source checkout (its extension
    not built in place) would shadow the installed package; so the driver starts Ray from an
    empty folder, and the workers get the running pyengine's folder first on PYTHONPATH."""
    from pyengine.bench.serve_suite import free_port, pyengine_root

    # Serve gives its HTTP proxy 5 s to start; a loaded 2-core CI machine can take longer.
    # Ray's processes read these at start, from the environment ray.init passes on.
    patience = {
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "120",
        "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60",
    }
    saved = {k: os.environ.get(k) for k in patience}
    os.environ.update(patience)
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray-cwd"))
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": pyengine_root()}},
        )
    finally:
        os.chdir(cwd)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return fuzz_seeds.write_gguf_seed(tmp_path_factory.mktemp("ray") / "model.gguf", context=512)


def replica_states() -> dict:
    app = serve.status().applications.get("default")
    return {} if app is None else dict(app.deployments["pyengine"].replica_states)


@pytest.fixture(scope="module")
def tiny_pack(tiny_gguf):
    from pyengine.pack import pack

    path = tiny_gguf.with_suffix(".pack")
    pack(tiny_gguf, path)
    return path


@pytest.mark.parametrize("source", ["gguf", "pack"])
def test_two_replicas_answer_concurrent_chat(cluster, tiny_gguf, tiny_pack, source):
    """From the GGUF (each replica packs its own copy) or from a pack file (both map one)."""
    model = str(tiny_gguf if source == "gguf" else tiny_pack)
    serve.run(
        pr.deployment(model, num_replicas=2, threads_per_replica=1, kv_cache_gb=0.01),
        route_prefix="/",
    )
    assert replica_states() == {"RUNNING": 2}
    client = openai.OpenAI(base_url=cluster + "/v1", api_key="unused", max_retries=0, timeout=60)

    def chat(i):
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"hello {i}"}],
            max_tokens=8,
            temperature=0.0,
        )
        return r.choices[0].finish_reason, r.usage.completion_tokens

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(chat, range(24)))
    assert all(reason in ("stop", "length") and n >= 1 for reason, n in answers), answers
    serve.delete("default")


def test_ray_data_embedder_equals_encode(cluster, require_model):
    path = require_model("all-minilm-l6-v2")
    texts = [f"sentence number {i} about {'cats' if i % 3 else 'the weather'}" for i in range(2000)]
    ds = ray.data.from_items([{"text": t} for t in texts])
    out = ds.map_batches(
        pr.Embedder,
        fn_constructor_kwargs={"model": str(path), "threads": 1},
        concurrency=2,
        batch_size=256,
        num_cpus=1,
    ).take_all()
    by_text = {row["text"]: row["embedding"] for row in out}  # Ray Data may reorder blocks
    assert len(out) == len(texts) and set(by_text) == set(texts)
    got = np.stack([by_text[t] for t in texts])
    want = pyengine.load(path).encode(texts)
    # batches of 256 pad differently from encode()'s own: rounding may differ, not meaning
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)


def replica_actors() -> set[str]:
    """Names of the pyengine replicas' actors alive now (a killed one may stay listed as a
    name for a while; get_actor fails for it)."""
    alive = set()
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["name"].startswith("SERVE_REPLICA::default#pyengine#"):
            try:
                ray.get_actor(entry["name"], namespace=entry["namespace"])
            except ValueError:
                continue
            alive.add(entry["name"])
    return alive


def test_a_replica_killed_while_loading_is_replaced(cluster, tiny_gguf):
    done = threading.Event()

    def deploy():
        serve.run(
            pr.deployment(str(tiny_gguf), num_replicas=2, threads_per_replica=1, kv_cache_gb=0.01),
            route_prefix="/",
        )
        done.set()

    threading.Thread(target=deploy, daemon=True).start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline:
        for name in replica_actors():  # the first seen: still in its constructor (loading)
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
            killed = name
            break
        time.sleep(0.02)
    assert killed is not None, "no replica started"

    def ask(_):
        try:
            # no answer in 3 minutes counts as a hang (a replacement replica on a loaded
            # 2-core machine takes tens of seconds to start)
            r = httpx.post(
                cluster + "/v1/completions", timeout=180, json={"prompt": "hello", "max_tokens": 4}
            )
        except httpx.TimeoutException:
            return "hang"
        except httpx.TransportError:
            return "refused"  # the proxy not yet listening for this app
        return "answer" if r.status_code == 200 else f"error {r.status_code}"

    with cf.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(ask, range(12)))
    assert "hang" not in outcomes, outcomes
    assert done.wait(120), "the application never became ready"
    deadline = time.monotonic() + 120
    while replica_states() != {"RUNNING": 2} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert replica_states() == {"RUNNING": 2}
    assert killed not in replica_actors() and len(replica_actors()) == 2
    r = httpx.post(
        cluster + "/v1/completions", json={"prompt": "hello", "max_tokens": 4}, timeout=60
    )
    assert r.status_code == 200
    serve.delete("default")
