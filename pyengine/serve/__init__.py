"""Serving: the continuous-batching engine over a paged KV cache (engine.py, block_manager.py)
and the OpenAI-compatible HTTP server (app.py; needs the serve extra: FastAPI, uvicorn,
prometheus-client)."""
