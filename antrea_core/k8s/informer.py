"""List+watch informers: keep a dict cache of one resource in sync and tell handlers.

One thread per informer (the boundary: handlers run on it, so they should be cheap or
hand work to another thread, see `dispatch.SerialDispatcher`). The informer lists, then
watches from the list's resourceVersion with bookmarks; a dropped or timed-out watch is
resumed from the last resourceVersion seen (event or bookmark) without a new list; a
410 Gone (the server no longer has that version) triggers a relist whose difference with
the cache is delivered as adds, updates and deletes. Errors are retried with
exponential backoff. Objects are plain dicts in API JSON shape.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from antrea_core.k8s.rawclient import JSON, RawClient, WatchStream
from antrea_core.k8s.resources import Resource

log = logging.getLogger("antrea.k8s.informer")


class ResourceEventHandler(Protocol):
    """What an informer calls, on its own thread, in the order changes happened.
    A handler may also define ``on_synced()``: called once, after the first list has
    been delivered."""

    def on_add(self, obj: JSON) -> None: ...

    def on_update(self, old: JSON, new: JSON) -> None: ...

    def on_delete(self, obj: JSON) -> None: ...


def object_key(obj: JSON) -> str:
    """namespace/name for namespaced objects, name otherwise."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def _rv(obj: JSON) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


class Backoff:
    """Exponential backoff with jitter."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


class _Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): relist."""


class Informer:
    """Keeps a cache of one resource (optionally one namespace / selector) in sync."""

    def __init__(self, client: RawClient, resource: Resource, *,
                 namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None, watch_timeout: int = 300,
                 page_size: int = 500, backoff: Backoff | None = None) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self._backoff = backoff or Backoff()
        self._cache: dict[str, JSON] = {}
        self._lock = threading.Lock()
        self._handlers: list[Any] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self.resource_version: str | None = None
        # Observable for tests and logs.
        self.lists = 0
        self.watches = 0

    def add_handler(self, handler: ResourceEventHandler) -> None:
        """Add before start(): a handler added later misses the objects already cached."""
        self._handlers.append(handler)

    # -- reads (any thread) -------------------------------------------------------------

    def get(self, key: str) -> JSON | None:
        with self._lock:
            return self._cache.get(key)

    def list(self) -> list[JSON]:
        with self._lock:
            return list(self._cache.values())

    @property
    def synced(self) -> threading.Event:
        """Set once the first list has been delivered to the handlers."""
        return self._synced

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start, or restart after stop() (resuming from the last resourceVersion)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"informer-{self.resource.plural}")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        what = self.resource.plural
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch_once()
            except _Gone:
                log.info("watch expired resource=%s rv=%s: relisting", what,
                         self.resource_version)
                self.resource_version = None
            except Exception as exc:
                if self._stop.is_set():
                    break
                delay = self._backoff.next()
                if isinstance(exc, ApiException):
                    log.warning("api error resource=%s status=%s reason=%s retry_in=%.1fs",
                                what, exc.status, exc.reason, delay)
                else:
                    log.warning("watch failed resource=%s error=%r retry_in=%.1fs", what,
                                exc, delay)
                self._stop.wait(delay)

    def _relist(self) -> None:
        listed = self.client.list(self.resource, self.namespace, self.label_selector,
                                  self.field_selector, self.page_size)
        fresh = {object_key(o): o for o in listed["items"]}
        with self._lock:
            old_cache, self._cache = self._cache, dict(fresh)
        for key, old in old_cache.items():
            if key not in fresh:
                self._notify("on_delete", old)
        for key, obj in fresh.items():
            old = old_cache.get(key)
            if old is None:
                self._notify("on_add", obj)
            elif _rv(old) != _rv(obj):
                self._notify("on_update", old, obj)
        self.resource_version = (listed.get("metadata") or {}).get("resourceVersion") or "0"
        self.lists += 1
        log.info("listed resource=%s items=%d rv=%s", self.resource.plural, len(fresh),
                 self.resource_version)
        if not self._synced.is_set():
            self._synced.set()
            for handler in self._handlers:
                synced = getattr(handler, "on_synced", None)
                if synced is not None:
                    self._call(synced)

    def _watch_once(self) -> None:
        assert self.resource_version is not None
        # Spread server-side timeouts so informers do not all reconnect at once.
        timeout = max(1, int(self.watch_timeout * random.uniform(1.0, 1.5)))
        try:
            stream = self.client.watch(self.resource, self.resource_version, self.namespace,
                                       self.label_selector, self.field_selector, timeout)
        except ApiException as exc:
            if exc.status == 410:
                raise _Gone from None
            raise
        self._stream = stream
        self.watches += 1
        try:
            if self._stop.is_set():
                return
            for event in stream:
                if self._stop.is_set():
                    return
                self._apply(event)
                self._backoff.reset()
        finally:
            self._stream = None
            stream.close()

    def _apply(self, event: JSON) -> None:
        etype = event.get("type")
        obj = event.get("object") or {}
        if etype == "ERROR":
            code = int(obj.get("code") or 500)
            if code == 410:
                raise _Gone
            raise ApiException(status=code, reason=obj.get("message", ""))
        rv = _rv(obj)
        if etype == "BOOKMARK":
            self.resource_version = rv or self.resource_version
            return
        key = object_key(obj)
        if etype in ("ADDED", "MODIFIED"):
            with self._lock:
                old = self._cache.get(key)
                self._cache[key] = obj
            if old is None:
                self._notify("on_add", obj)
            else:
                self._notify("on_update", old, obj)
        elif etype == "DELETED":
            with self._lock:
                old = self._cache.pop(key, None)
            if old is not None:  # never seen: handlers never saw it either
                self._notify("on_delete", obj)
        if rv:
            self.resource_version = rv

    def _notify(self, method: str, *args: JSON) -> None:
        for handler in self._handlers:
            self._call(getattr(handler, method), *args)

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("handler failed resource=%s", self.resource.plural)
