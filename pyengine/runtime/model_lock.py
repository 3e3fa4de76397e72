"""One call at a time on a model's shared state.

A model object owns mutable buffers that every call reuses (its plans' activation buffers, the
KV cache of generate()), so two calls running at once would overwrite each other's values and
both return wrong results without any error. ModelLock serialises them: a call from another
thread waits its turn and then gets exactly the result it would get alone. A second call from
the thread that already holds the model (e.g. generate() inside the loop over an unfinished
stream of the same model) cannot wait for itself, so it raises instead of deadlocking.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ModelBusyError(RuntimeError):
    """The model is already running a call in this same thread (an unfinished stream)."""


class ModelLock:
    def __init__(self, what: str):
        self._what = what
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:
            raise ModelBusyError(
                f"this {self._what} is already running a call in this thread (an unfinished "
                "stream?): finish or close it first, or load a second model object"
            )
        with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    def hold_while(self, steps: Iterator) -> Iterator:
        """Iterates `steps` holding the lock: taken at the first item, released when the steps
        end or the iterator is closed (or collected), so a lazy stream holds the model only
        while it runs."""
        with self.held():
            yield from steps
