"""Serving workloads: an OpenAI-compatible server under N concurrent streaming chat clients.

Each server is started the way its users start it, one process per weight dtype and thread
count (`python -m pyengine.cli serve ...`), next to llama-cpp-python's OpenAI server on the
same GGUF (`python -m llama_cpp.server ...`), each with its default settings otherwise
(pyengine's prefix caching included: the clients' prompts share their opening words, as
requests sharing a system prompt do). N clients each send one streaming chat completion at
the same moment; per (threads, N) the suite reports the aggregate generated tokens/s, the time
to first token and the inter-token latency (p50 and p99), and the requests that failed. The
clients run in this process (asyncio + httpx) and share the machine's cores with the server,
as a load generator on the same host does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyengine.bench.dtypes import dtype_notes, workload_label
from pyengine.bench.results import Result

CLIENTS, QUICK_CLIENTS = (1, 4, 16, 64), (1, 4)
MAX_TOKENS, QUICK_MAX_TOKENS = 128, 16
STARTUP_SECONDS = 120.0
# A stream that waits this long for its next bytes counts as failed. Generous: a server that
# runs one request at a time keeps the last of 64 clients waiting for all the others.
READ_TIMEOUT = 600.0
PEER = "llama.cpp-server"

# No OpenAI field makes a server ignore the end-of-sequence token, so the prompts ask for long
# output: most streams then run to max_tokens, and every engine generates about as many tokens.
INSTRUCTION = "Write a long, detailed story of at least a thousand words from these notes.\n\n"
NOTES = (
    "A lighthouse keeper lives alone on a rocky island. Every evening she climbs the tower and "
    "lights the lamp. One winter night a small boat without lights drifts towards the rocks. "
)


def long_output_prompt(i: int) -> str:
    """Client i's prompt: the notes 1 to 8 times, so prompt lengths vary (the same each run)."""
    return INSTRUCTION + NOTES * (1 + i % 8)


# ---- the server process --------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on: the one the OS picks for a socket bound to port 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pyengine_root() -> str:
    """The folder the running pyengine was imported from (site-packages, or a source tree)."""
    import pyengine

    return str(Path(pyengine.__file__).resolve().parents[1])


def pyengine_env() -> dict:
    """The environment for pyengine's server: it imports the pyengine this benchmark runs, not
    another installed copy."""
    root = pyengine_root()
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }


@contextlib.contextmanager
def server_process(argv, port: int, ready_path: str, env=None, cwd=None):
    """Runs the server command `argv` (listening on `port`), yields its base URL once GET
    ready_path answers 200, and stops it when the block ends, however it ends. cwd: where it
    runs (`python -m` puts that folder first on sys.path: a source tree there would shadow the
    installed package)."""
    url = f"http://127.0.0.1:{port}"
    # its output goes to a file, not a pipe: nobody reads a pipe while the load runs, and a
    # full one would block the server
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            wait_until_ready(proc, url + ready_path, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_ready(proc, url: str, log, timeout: float = STARTUP_SECONDS) -> None:
    """Polls GET url until it answers 200; a server that exits or stays silent for `timeout`
    seconds raises, with the end of its output (why it did not start)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{' '.join(map(str, proc.args[:4]))} ... exited with code {proc.returncode} "
                f"before answering:\n{tail(log)}"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"no answer from {url} within {timeout:.0f} s:\n{tail(log)}")


def tail(log, size: int = 2000) -> str:
    """The end of the server's output. pread: the server shares the file's offset."""
    end = os.fstat(log.fileno()).st_size
    return os.pread(log.fileno(), size, max(0, end - size)).decode(errors="replace")


# ---- the load ------------------------------------------------------------------------------


@dataclass
class Stream:
    """One client's request: when it was sent, when each content chunk arrived, how many
    tokens it generated, and why it failed (None: it did not)."""

    sent: float
    arrivals: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str | None = None


@dataclass
class Load:
    """N streams sent at once, and the wall time from the first sent to the last finished."""

    streams: list[Stream]
    wall: float

    @property
    def ok(self) -> list[Stream]:
        return [s for s in self.streams if s.error is None]

    @property
    def failed(self) -> int:
        return len(self.streams) - len(self.ok)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.ok)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall

    def ttfts(self) -> list[float]:
        return [s.arrivals[0] - s.sent for s in self.ok if s.arrivals]

    def inter_token(self) -> list[float]:
        """Gaps between a stream's consecutive content chunks, every stream's pooled."""
        return [b - a for s in self.ok for a, b in zip(s.arrivals, s.arrivals[1:])]


async def stream_chat(client, url: str, body: dict) -> Stream:
    import httpx

    s = Stream(time.perf_counter())
    usage, done = None, False
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                s.error = (
                    f"HTTP {r.status_code}: {(await r.aread())[:300].decode(errors='replace')}"
                )
                return s
            async for line in r.aiter_lines():
                arrived = time.perf_counter()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:  # an error after the 200 comes as an event
                    s.error = str(chunk["error"])[:300]
                    return s
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                    s.arrivals.append(arrived)
                usage = chunk.get("usage") or usage
    except (httpx.HTTPError, ValueError) as e:
        s.error = f"{type(e).__name__}: {e}"
        return s
    if not done:
        s.error = "the stream ended without data: [DONE]"
    # usage counts tokens; a server that ignores stream_options sends none, and then each
    # content chunk stands for one token
    s.tokens = usage["completion_tokens"] if usage else len(s.arrivals)
    return s


async def _load(url: str, model: str, n: int, max_tokens: int, prompt) -> Load:
    import httpx

    bodies = [
        {
            "model": model,
            "messages": [{"role": "user", "content": prompt(i)}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for i in range(n)
    ]
    timeout = httpx.Timeout(READ_TIMEOUT, connect=30.0)
    limits = httpx.Limits(max_connections=n)  # one connection per client, none waits for one
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        start = time.perf_counter()
        streams = await asyncio.gather(*(stream_chat(client, url, b) for b in bodies))
        return Load(list(streams), time.perf_counter() - start)


def run_load(url: str, model: str, n: int, max_tokens: int, prompt=long_output_prompt) -> Load:
    """n clients, client i sending prompt(i), all at once."""
    return asyncio.run(_load(url, model, n, max_tokens, prompt))


def measure(url: str, model: str, clients, max_tokens: int, prompt, say) -> dict[int, Load]:
    """{n: Load} for each n in `clients`, one load after the other on the server at `url`."""
    # one short request first: one-time costs of a fresh server stay out of the figures
    warm = run_load(url, model, 1, 2, lambda i: "Say hello.")
    if warm.failed:
        raise RuntimeError(f"{url}: the warm-up request failed: {warm.streams[0].error}")
    loads = {}
    for n in clients:
        say(f"{n} stream(s) x {max_tokens} tokens")
        loads[n] = run_load(url, model, n, max_tokens, prompt)
    return loads


def pyengine_argv(source, threads: int, dtype: str, port: int) -> list[str]:
    return [sys.executable, "-m", "pyengine.cli", "serve", "--model", str(source),
            "--threads", str(threads), "--port", str(port), "--host", "127.0.0.1",
            "--dtype", dtype]  # fmt: skip


def peer_argv(gguf, threads: int, port: int) -> list[str]:
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
            "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--port", str(port), "--host", "127.0.0.1",
            # its default cuts a running stream short when another request arrives
            "--interrupt_requests", "false"]  # fmt: skip


# ---- Results ---------------------------------------------------------------------------------


def rows(label, n, threads, dtype, loads: dict[str, Load], one_stream, notes=()) -> list[Result]:
    """The Results of one load of n streams ("<label> <metric>"), each engine's samples from its
    own streams: aggregate tok/s, then time to first token and inter-token latency, p50 and
    p99. one_stream: each engine's 1-stream tok/s, which the tok/s row is compared with."""
    py = loads["pyengine"]
    if not py.ok:
        raise RuntimeError(f"pyengine failed all {n} requests: {py.streams[0].error}")
    notes = list(notes)
    if n > 1 and one_stream:
        ratios = [
            f"{e} {load.tokens_per_second / one_stream[e]:.2f}x"
            for e, load in loads.items()
            if one_stream.get(e)
        ]
        notes.append("tok/s over the 1-stream tok/s: " + ", ".join(ratios))
    for e, load in loads.items():
        if load.failed:
            first = next(s.error for s in load.streams if s.error)
            notes.append(f"{e}: {load.failed} of {n} requests failed (first: {first})")

    def label_of(metric):
        return workload_label(f"{label} {metric}", dtype)

    # seconds per generated token, so that figure() (work 1 / seconds) is the aggregate tok/s
    # of each engine, whatever number of tokens it generated
    per_token = {e: [load.wall / load.tokens] for e, load in loads.items() if load.tokens}
    out = [Result("serve", label_of("generated"), threads, "tok/s", 1, per_token, notes=notes)]
    for metric, values in (("TTFT", Load.ttfts), ("inter-token", Load.inter_token)):
        samples = {e: values(load) for e, load in loads.items()}
        samples = {e: s for e, s in samples.items() if s}
        if "pyengine" not in samples:
            continue
        p99 = {e: [float(np.percentile(s, 99))] for e, s in samples.items()}
        out.append(Result("serve", label_of(f"{metric} p50"), threads, "ms", 1, samples))
        out.append(Result("serve", label_of(f"{metric} p99"), threads, "ms", 1, p99))
    return out


# one server process per dtype and thread count, minutes each: "auto" (the GGUF's blocks),
# int8 and q4 by --dtypes
DEFAULT_DTYPES = ("float32", "bfloat16")


def run(
    source,
    threads_list,
    *,
    dtypes=DEFAULT_DTYPES,
    peers=(PEER,),
    quick=False,
    clients=None,
    max_tokens=None,
    prompt=long_output_prompt,
    progress=None,
) -> list[Result]:
    """pyengine's server of `source` (a short name, folder or .gguf), one process per (thread
    count, dtype), and llama-cpp-python's server on the same GGUF (when `source` is one and
    PEER is in `peers`), one process per thread count, its Loads shared by every dtype's rows.
    clients, max_tokens: the defaults of the mode (quick or not) unless given."""
    from pyengine.loaders import resolve

    path = resolve(source)
    name = path.stem if path.is_file() else path.name
    clients = tuple(clients or (QUICK_CLIENTS if quick else CLIENTS))
    max_tokens = max_tokens or (QUICK_MAX_TOKENS if quick else MAX_TOKENS)
    workload = (clients, max_tokens, prompt)
    results = []
    for t in threads_list:

        def say(who, message, t=t):
            if progress:
                progress(f"serve: {name} {who}, {t} thread(s), {message}")

        peer = {}
        if PEER in peers and path.is_file():
            port = free_port()
            say(PEER, "starting its server")
            # llama-cpp-python has no /health; /v1/models answers once the model is loaded
            with server_process(peer_argv(path, t, port), port, "/v1/models") as url:
                peer = measure(url, str(path), *workload, functools.partial(say, PEER))
        loads = {}  # dtype -> n -> engine -> Load
        for dtype in dtypes:
            port = free_port()
            argv = pyengine_argv(source, t, dtype, port)
            say(f"pyengine {dtype}", "starting pyengine serve")
            with server_process(argv, port, "/health", pyengine_env(), pyengine_root()) as url:
                ours = measure(
                    url, str(source), *workload, functools.partial(say, f"pyengine {dtype}")
                )
            loads[dtype] = {
                n: {"pyengine": ours[n], **({PEER: peer[n]} if peer else {})} for n in clients
            }
        notes = [f"{PEER} runs the GGUF's quantized weights natively"] if peer else []
        for n in clients:  # each load's dtypes side by side
            for dtype in dtypes:
                by_n = loads[dtype]
                one = {e: load.tokens_per_second for e, load in by_n.get(1, {}).items()}
                label = f"{name} {n} stream{'s' if n > 1 else ''} x{max_tokens}"
                results += rows(label, n, t, dtype, by_n[n], one, dtype_notes(dtype, peer) + notes)
    return results
