"""The server the soak and fault tests drive: `pyengine serve` in a subprocess on a loopback
port, serving a copy of the fuzzers' GGUF seed (a copy, so that a fault test may truncate or
delete the file under the running server)."""

from __future__ import annotations

import pytest
from served import CONTEXT, start_server


@pytest.fixture(scope="module")
def served_gguf(tmp_path_factory):
    """(base URL, path of the model file it serves)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import fuzz_seeds

    path = tmp_path_factory.mktemp("served") / "model.gguf"
    fuzz_seeds.write_gguf_seed(path, context=CONTEXT)
    with start_server(path, "--max-batch", "16", "--max-queue", "256") as base:
        yield base, path
