"""The app in process (Starlette's TestClient): a full queue answers 503 with Retry-After in
OpenAI's error shape, and an oversized body 413, without reaching the engine."""

from __future__ import annotations

import pytest

import pyengine

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from pyengine.serve.app import MAX_BODY_BYTES, create_app  # noqa: E402


@pytest.fixture(scope="module")
def model(tiny_llama_folder):
    return pyengine.load(tiny_llama_folder)


def test_queue_full_is_503_with_retry_after(model):
    app = create_app(model, n_blocks=8, block_size=16, max_queue=0)
    client = TestClient(app)
    r = client.post("/v1/completions", json={"prompt": "a b", "max_tokens": 2})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["type"] == "server_overloaded"


def test_oversized_body_is_413(model):
    client = TestClient(create_app(model, n_blocks=8, block_size=16))
    r = client.post(
        "/v1/completions",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and "error" in r.json()


def test_unknown_route_is_404_in_openai_shape(model):
    client = TestClient(create_app(model, n_blocks=8, block_size=16))
    r = client.post("/v1/responses", json={})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
