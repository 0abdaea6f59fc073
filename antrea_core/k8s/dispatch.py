"""Run the events of several informers on one thread, in batches.

Informer handlers run on one thread per informer; logic that is not thread-safe (the
controller's NetworkPolicy computation) instead gets its calls through a
`SerialDispatcher`: each informer's handler enqueues, one worker thread runs them in
arrival order. The worker drains whatever is queued and runs it inside one ``batch()``
context, so bursts are coalesced; until every source has delivered its first list, all
work goes into a single batch, so the initial sync publishes each object once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from antrea_core.k8s.rawclient import JSON

log = logging.getLogger("antrea.k8s.dispatch")

BatchFactory = Callable[[], AbstractContextManager[Any]]
_STOP = object()


class _Proxy:
    """A ResourceEventHandler that enqueues calls to ``target`` on the dispatcher."""

    def __init__(self, dispatcher: SerialDispatcher, name: str,
                 on_add: Callable[[JSON], None], on_update: Callable[[JSON, JSON], None],
                 on_delete: Callable[[JSON], None]) -> None:
        self._d, self._name = dispatcher, name
        self._add, self._update, self._delete = on_add, on_update, on_delete

    def on_add(self, obj: JSON) -> None:
        self._d.submit(self._add, obj)

    def on_update(self, old: JSON, new: JSON) -> None:
        self._d.submit(self._update, old, new)

    def on_delete(self, obj: JSON) -> None:
        self._d.submit(self._delete, obj)

    def on_synced(self) -> None:
        self._d.submit(self._d._source_synced, self._name)


class SerialDispatcher:
    """One worker thread running submitted calls in order, coalesced into batches."""

    def __init__(self, batch: BatchFactory | None = None, max_batch: int = 10_000) -> None:
        self._batch = batch or contextlib.nullcontext
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sources: set[str] = set()
        self._pending: set[str] = set()
        self.synced = threading.Event()  # every source's first list has been processed
        self._thread: threading.Thread | None = None
        self.processed = 0

    def handler(self, name: str, on_add: Callable[[JSON], None],
                on_update: Callable[[JSON, JSON], None],
                on_delete: Callable[[JSON], None]) -> _Proxy:
        """A handler to register on informer ``name``; register all before start()."""
        self._sources.add(name)
        self._pending.add(name)
        return _Proxy(self, name, on_add, on_update, on_delete)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._queue.put((fn, args))

    def start(self) -> None:
        if not self._pending:
            self.synced.set()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dispatcher")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    def _source_synced(self, name: str) -> None:
        self._pending.discard(name)
        log.info("source synced name=%s waiting_for=%s", name,
                 ",".join(sorted(self._pending)) or "-")

    def _run(self) -> None:
        if not self.synced.is_set():
            # The initial sync: one batch until every source delivered its first list.
            if self._in_batch(self._initial) is _STOP:
                return
            self.synced.set()
            log.info("initial sync done calls=%d", self.processed)
        while True:
            item = self._queue.get()
            if item is _STOP or self._in_batch(lambda item=item: self._drain(item)) is _STOP:
                return

    def _in_batch(self, work: Callable[[], object]) -> object:
        """Run work inside one batch; a failure of the batch itself (its publication) is
        logged, and the dispatcher goes on with the next events."""
        result: object = None
        try:
            with self._batch():
                result = work()
        except Exception:
            log.exception("batch failed")
        return result

    def _initial(self) -> object:
        while self._pending:
            item = self._queue.get()
            if item is _STOP:
                return _STOP
            self._call(item)
        return None

    def _drain(self, first: tuple[Callable[..., None], tuple[Any, ...]]) -> object:
        self._call(first)
        for _ in range(self._max_batch - 1):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return None
            if item is _STOP:
                return _STOP
            self._call(item)
        return None

    def _call(self, item: tuple[Callable[..., None], tuple[Any, ...]]) -> None:
        fn, args = item
        self.processed += 1
        try:
            fn(*args)
        except Exception:
            log.exception("handler failed fn=%s", getattr(fn, "__qualname__", fn))
