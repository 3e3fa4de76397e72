"""`pyengine serve`: an OpenAI-compatible HTTP server on FastAPI, over one Engine.

Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (both with stream:
true as server-sent events), POST /v1/embeddings (for an encoder model), GET /health,
GET /metrics (Prometheus text). Errors answer in OpenAI's JSON shape. The engine runs steps in
its own thread; each HTTP request waits on an asyncio queue the engine's events are posted to.
A client that disconnects, from a stream or while it waits for a whole answer, cancels its
sequences, which frees their cache blocks at the next step.
"""

from __future__ import annotations

import asyncio
import base64
import json
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from pyengine.generation.generate import encode_chat
from pyengine.serve.engine import Engine, EngineError, QueueFullError, SamplingParams
from pyengine.serve.metrics import ServerMetrics
from pyengine.serve.openai_api import (
    ApiError,
    bad,
    choice_count,
    field,
    new_id,
    now,
    number_in,
    sampling_fields,
    usage,
)

# how often a request waiting for a whole (not streamed) answer checks that its client is
# still connected
DISCONNECT_POLL_SECONDS = 0.25
MAX_BODY_BYTES = 16 * 2**20  # a larger body is refused (413) before it is parsed


def create_app(
    model=None,
    *,
    model_name: str = "model",
    embedder=None,
    embedder_name: str | None = None,
    default_max_tokens: int = 256,
    **engine_options,
) -> FastAPI:
    """The app for a decoder `model` (chat and completions) and/or an encoder `embedder`
    (embeddings). engine_options go to Engine (kv_cache_gb, max_batch, deterministic ...)."""
    if model is None and embedder is None:
        raise ValueError("serve needs a model or an embedder")
    metrics = ServerMetrics()
    engine = Engine(model, metrics=metrics, **engine_options) if model is not None else None
    names = {}
    if model is not None:
        names[model_name] = "generate"
    if embedder is not None:
        names[embedder_name or (model_name if model is None else f"{model_name}-embeddings")] = (
            "embed"
        )

    @asynccontextmanager
    async def lifespan(app):
        if engine is not None:
            engine.start()
        yield
        if engine is not None:
            await run_in_threadpool(engine.shutdown)

    app = FastAPI(title="pyengine", lifespan=lifespan)
    app.state.engine = engine
    app.state.metrics = metrics

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        metrics.requests.labels(request.url.path, str(e.status)).inc()
        headers = {"Retry-After": "1"} if e.status == 503 else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception):
        metrics.requests.labels(request.url.path, "500").inc()
        err = ApiError(500, f"internal error: {type(e).__name__}: {e}")
        return JSONResponse(err.body(), status_code=500)

    async def read_body(request: Request) -> dict:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():  # a chunked body has no length to check first
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise bad(f"the body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise bad("the body must be a JSON object")
        return body

    def check_model(body: dict, role: str) -> str:
        name = field(body, "model", str, None)
        if name is None:
            name = next((n for n, r in names.items() if r == role), None)
        if names.get(name) != role:
            raise ApiError(
                404,
                f"model '{name}' does not exist here (serving: {', '.join(sorted(names))})",
                "model",
                code="model_not_found",
            )
        return name

    # ---- plain routes ------------------------------------------------------------------------

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(
            metrics.exposition().decode(), media_type="text/plain; version=0.0.4"
        )

    @app.get("/v1/models")
    async def list_models():
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "pyengine"} for n in names]
        return {"object": "list", "data": data}

    # ---- generation --------------------------------------------------------------------------

    async def run_choices(prompt_ids, params: SamplingParams, n: int):
        """Submits n choices; returns (requests, queue of their events)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def on_event(event):  # the engine's thread: hand the event to this request's loop
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the loop is closed (server shutting down): nobody listens
                pass

        reqs = []
        try:
            for i in range(n):
                reqs.append(engine.submit(prompt_ids, params, on_event, index=i))
        except QueueFullError as e:
            for r in reqs:
                engine.cancel(r)
            raise ApiError(503, f"server busy: {e}") from None
        except EngineError as e:
            raise bad(str(e), "max_tokens") from None
        except ValueError as e:
            raise bad(str(e), "max_tokens" if "max_tokens" in str(e) else None) from None
        return reqs, queue

    def make_params(fields, logprobs):
        try:
            params = SamplingParams(logprobs=logprobs, **fields)
            params.check()
        except ValueError as e:
            raise bad(str(e)) from None
        return params

    def token_text(t: int) -> str:
        return model.tokenizer.decode([t], skip_special_tokens=False)

    def chat_logprobs(events) -> dict:
        content = []
        for e in events:
            if e.token is None or e.logprob is None:
                continue
            text = token_text(e.token)
            content.append(
                {
                    "token": text,
                    "logprob": e.logprob,
                    "bytes": list(text.encode()),
                    "top_logprobs": [
                        {
                            "token": token_text(t),
                            "logprob": lp,
                            "bytes": list(token_text(t).encode()),
                        }
                        for t, lp in (e.top_logprobs or [])
                    ],
                }
            )
        return {"content": content}

    def completion_logprobs(events) -> dict:
        tokens, lps, tops, offsets, at = [], [], [], [], 0
        for e in events:
            if e.token is None or e.logprob is None:
                continue
            text = token_text(e.token)
            tokens.append(text)
            lps.append(e.logprob)
            tops.append({token_text(t): lp for t, lp in (e.top_logprobs or [])})
            offsets.append(at)
            at += len(text)
        return {
            "tokens": tokens,
            "token_logprobs": lps,
            "top_logprobs": tops,
            "text_offset": offsets,
        }

    async def respond(request, body, kind, name, prompt_ids, params, n):
        stream = field(body, "stream", bool, False)
        include_usage = False
        if stream:
            opts = field(body, "stream_options", dict, {})
            include_usage = bool(opts.get("include_usage", False))
        reqs, queue = await run_choices(prompt_ids, params, n)
        rid = new_id("chatcmpl" if kind == "chat" else "cmpl")
        created = now()
        obj = "chat.completion" if kind == "chat" else "text_completion"
        metrics.requests.labels(request.url.path, "200").inc()
        index_of = {r.id: i for i, r in enumerate(reqs)}

        def the_usage():
            done = sum(len(r.output) for r in reqs)
            return usage(len(prompt_ids), done, reqs[0].cached_tokens)

        if not stream:
            events = {r.id: [] for r in reqs}
            finished = 0
            loop = asyncio.get_running_loop()
            next_check = loop.time() + DISCONNECT_POLL_SECONDS
            try:
                while finished < len(reqs):
                    try:
                        e = await asyncio.wait_for(queue.get(), DISCONNECT_POLL_SECONDS)
                    except asyncio.TimeoutError:
                        e = None
                    if loop.time() >= next_check:
                        # nobody would read the answer: stop generating it (finally: cancel)
                        if await request.is_disconnected():
                            return Response(status_code=499)  # nginx's "client closed"
                        next_check = loop.time() + DISCONNECT_POLL_SECONDS
                    if e is not None:
                        events[e.request.id].append(e)
                        finished += e.finish_reason is not None
            finally:
                for r in reqs:
                    if r.finish_reason is None:
                        engine.cancel(r)
            choices = []
            for r in reqs:
                evs = events[r.id]
                if evs and evs[-1].finish_reason == "error":
                    raise ApiError(500, f"generation failed: {evs[-1].error}")
                text = r.text.text if r.text is not None else ""
                reason = "stop" if r.finish_reason == "stop" else "length"
                lp = None
                if params.logprobs is not None:
                    lp = chat_logprobs(evs) if kind == "chat" else completion_logprobs(evs)
                if kind == "chat":
                    choices.append(
                        {
                            "index": index_of[r.id],
                            "finish_reason": reason,
                            "logprobs": lp,
                            "message": {"role": "assistant", "content": text},
                        }
                    )
                else:
                    choices.append(
                        {
                            "index": index_of[r.id],
                            "finish_reason": reason,
                            "logprobs": lp,
                            "text": text,
                        }
                    )
            return {
                "id": rid,
                "object": obj,
                "created": created,
                "model": name,
                "choices": choices,
                "usage": the_usage(),
            }

        async def sse():
            chunk_obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

            def chunk(choices, **extra):
                return (
                    "data: "
                    + json.dumps(
                        {
                            "id": rid,
                            "object": chunk_obj,
                            "created": created,
                            "model": name,
                            "choices": choices,
                            **extra,
                        }
                    )
                    + "\n\n"
                )

            try:
                if kind == "chat":
                    yield chunk(
                        [
                            {
                                "index": i,
                                "delta": {"role": "assistant", "content": ""},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                            for i in range(n)
                        ]
                    )
                finished = 0
                while finished < len(reqs):
                    e = await queue.get()
                    i = index_of[e.request.id]
                    if e.finish_reason == "error":
                        yield (
                            "data: "
                            + json.dumps(ApiError(500, f"generation failed: {e.error}").body())
                            + "\n\n"
                        )
                        return
                    reason = None
                    if e.finish_reason is not None:
                        finished += 1
                        reason = "stop" if e.finish_reason == "stop" else "length"
                    if not e.text and reason is None and params.logprobs is None:
                        continue
                    lp = None
                    if params.logprobs is not None:
                        lp = chat_logprobs([e]) if kind == "chat" else completion_logprobs([e])
                    if kind == "chat":
                        delta = {"content": e.text} if e.text else {}
                        yield chunk(
                            [{"index": i, "delta": delta, "logprobs": lp, "finish_reason": reason}]
                        )
                    else:
                        yield chunk(
                            [{"index": i, "text": e.text, "logprobs": lp, "finish_reason": reason}]
                        )
                if include_usage:
                    yield chunk([], usage=the_usage())
                yield "data: [DONE]\n\n"
            finally:  # the client went away (or we are done): free what is still running
                for r in reqs:
                    if r.finish_reason is None:
                        engine.cancel(r)

        return StreamingResponse(
            sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request)
        name = check_model(body, "generate")
        messages = field(body, "messages", list)
        if not messages:
            raise bad("'messages' must not be empty", "messages")
        clean = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise bad(f"messages[{i}] must be an object with a string 'role'", "messages")
            content = m.get("content")
            if isinstance(content, list):  # content parts: text only
                texts = []
                for part in content:
                    if (
                        not isinstance(part, dict)
                        or part.get("type") != "text"
                        or not isinstance(part.get("text"), str)
                    ):
                        raise bad(
                            f"messages[{i}].content: only text parts are supported", "messages"
                        )
                    texts.append(part["text"])
                content = "".join(texts)
            if not isinstance(content, str):
                raise bad(f"messages[{i}].content must be a string", "messages")
            clean.append({"role": m["role"], "content": content})
        logprobs = field(body, "logprobs", bool, False)
        top = number_in(body, "top_logprobs", 0, 20, 0, integer=True)
        fields = sampling_fields(body, default_max_tokens)
        params = make_params(fields, top if logprobs else None)
        n = choice_count(body)
        try:
            prompt_ids = await run_in_threadpool(encode_chat, model, clean)
        except Exception as e:  # a template that rejects these messages
            raise bad(
                f"cannot render these messages with the chat template: {e}", "messages"
            ) from None
        if len(prompt_ids) == 0:
            raise bad("the rendered prompt is empty", "messages")
        return await respond(request, body, "chat", name, prompt_ids, params, n)

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await read_body(request)
        name = check_model(body, "generate")
        prompt = field(body, "prompt", (str, list))
        if isinstance(prompt, list):
            if len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            elif prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
                prompt_ids = np.asarray(prompt)
                if prompt_ids.min() < 0 or prompt_ids.max() >= model.vocab_size:
                    raise bad("'prompt' holds a token id outside the vocabulary", "prompt")
                prompt = None
            else:
                raise bad(
                    "'prompt' must be a string, a list of one string, or a list of token "
                    "ids (batches of prompts: send one request each)",
                    "prompt",
                )
        if prompt is not None:
            if not prompt:
                raise bad("'prompt' is empty", "prompt")
            if model.tokenizer is None:
                raise bad("this model has no tokenizer: send token ids", "prompt")
            prompt_ids = np.array(
                (await run_in_threadpool(model.tokenizer.encode, prompt)).ids, np.int32
            )
            if prompt_ids.size == 0:
                raise bad("'prompt' encodes to no tokens", "prompt")
        if field(body, "echo", bool, False):
            raise bad("'echo' is not supported", "echo")
        if field(body, "suffix", str, None):
            raise bad("'suffix' is not supported", "suffix")
        logprobs = number_in(body, "logprobs", 0, 20, None, integer=True)
        fields = sampling_fields(body, 16)
        params = make_params(fields, logprobs)
        n = choice_count(body)
        return await respond(request, body, "completion", name, prompt_ids, params, n)

    # ---- embeddings --------------------------------------------------------------------------

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await read_body(request)
        name = check_model(body, "embed")
        inputs = field(body, "input", (str, list))
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not texts or len(texts) > 2048:
            raise bad("'input' must hold 1 to 2048 strings", "input")
        if not all(isinstance(t, str) for t in texts):
            raise bad(
                "'input' must be a string or a list of strings (token ids are not supported)",
                "input",
            )
        fmt = field(body, "encoding_format", str, "float")
        if fmt not in ("float", "base64"):
            raise bad("'encoding_format' must be 'float' or 'base64'", "encoding_format")
        if field(body, "dimensions", int, None) is not None:
            raise bad("'dimensions' is not supported", "dimensions")
        encodings = await run_in_threadpool(embedder.tokenize, texts)
        vectors = await run_in_threadpool(embedder.embed_encodings, encodings)
        lengths = sum(len(e) for e in encodings)
        metrics.requests.labels(request.url.path, "200").inc()

        def encoded(v):  # base64: the little-endian float32 bytes, as OpenAI sends them
            if fmt == "float":
                return v.tolist()
            return base64.b64encode(v.astype("<f4").tobytes()).decode()

        data = [
            {"object": "embedding", "index": i, "embedding": encoded(v)}
            for i, v in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": name,
            "usage": {"prompt_tokens": lengths, "total_tokens": lengths},
        }

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def unknown_route(rest: str):
        raise ApiError(404, f"no route /v1/{rest}")

    return app


def load_app(
    model: str,
    *,
    dtype: str = "auto",
    threads: int | None = None,
    embedding_model: str | None = None,
    model_name: str | None = None,
    **options,
) -> FastAPI:
    """The app of `pyengine serve`, its models loaded here: `model` a decoder (chat and
    completions, with `embedding_model` beside it for embeddings) or an encoder alone
    (embeddings). options: create_app's (engine options, default_max_tokens); the engine
    options are dropped for an encoder alone. The CLI and each Ray replica build it so."""
    import pyengine

    decoder = pyengine.load(model, dtype=dtype, threads=threads)
    name = model_name or str(model)
    if not hasattr(decoder, "generate"):  # an encoder alone: embeddings only
        return create_app(None, embedder=decoder, embedder_name=name)
    if embedding_model:
        options["embedder"] = pyengine.load(embedding_model, dtype=dtype)
        options["embedder_name"] = embedding_model
    return create_app(decoder, model_name=name, **options)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Runs the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
