"""List/watch caches, a keyed work queue and the worker loop: all Kubernetes plumbing.

Concurrency model (threads behind one boundary): each Informer owns one thread that
lists then watches one resource, keeps a dict cache and calls handlers; handlers only
enqueue keys. Each controller owns a WorkQueue and worker threads that call its plain
`reconcile(key)`. A key is never processed by two workers at once (client-go semantics:
a key re-added while in flight is processed again after `done`).
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from kubernetes.client.exceptions import ApiException

from .kubeclient import JSON, KubeClient, Resource, WatchStream

log = logging.getLogger("antrea.lab.controllers.informer")

Handler = Callable[[JSON | None, JSON | None], None]  # (old, new); None = absent
IndexFunc = Callable[[JSON], Iterable[str]]


def object_key(obj: JSON) -> str:
    """namespace/name for namespaced objects, name otherwise (the cache and queue key)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, key)


class Backoff:
    """Exponential backoff with jitter for reconnects."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


class Informer:
    """Keeps a cache of one resource in sync: list, watch from the list's
    resourceVersion, resume from the last seen version after a dropped connection,
    relist (diffing the cache) when the server answers 410 Gone."""

    def __init__(self, client: KubeClient, resource: Resource, *,
                 field_selector: str | None = None, label_selector: str | None = None,
                 watch_timeout: int = 300) -> None:
        self.client = client
        self.resource = resource
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self._cache: dict[str, JSON] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._lock = threading.RLock()
        self._handlers: list[Handler] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self.resource_version: str | None = None
        self.relists = 0  # observable for tests and logs

    # -- configuration ---------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """handler(old, new) runs on the informer thread for every change; keep it cheap."""
        self._handlers.append(handler)

    def add_index(self, name: str, func: IndexFunc) -> None:
        with self._lock:
            self._indexers[name] = func
            self._indices[name] = {}
            for key, obj in self._cache.items():
                self._index_add(name, key, obj)

    # -- read API (any thread) -------------------------------------------------------

    def get(self, key: str) -> JSON | None:
        with self._lock:
            return self._cache.get(key)

    def list(self) -> list[JSON]:
        with self._lock:
            return list(self._cache.values())

    def list_keys(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def by_index(self, name: str, value: str) -> list[JSON]:
        with self._lock:
            keys = self._indices[name].get(value, set())
            return [self._cache[k] for k in keys if k in self._cache]

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart after stop(), resuming from the last resourceVersion)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"informer-{self.resource.plural}")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- cache mutation (informer thread) --------------------------------------------

    def _index_add(self, name: str, key: str, obj: JSON) -> None:
        for value in self._indexers[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _index_remove(self, name: str, key: str, obj: JSON) -> None:
        for value in self._indexers[name](obj):
            keys = self._indices[name].get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._indices[name][value]

    def _store(self, key: str, obj: JSON | None) -> JSON | None:
        with self._lock:
            old = self._cache.get(key)
            for name in self._indexers:
                if old is not None:
                    self._index_remove(name, key, old)
                if obj is not None:
                    self._index_add(name, key, obj)
            if obj is None:
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
            return old

    def _notify(self, old: JSON | None, new: JSON | None) -> None:
        for handler in self._handlers:
            try:
                handler(old, new)
            except Exception:
                log.exception("handler failed resource=%s", self.resource.plural)

    def _relist(self) -> None:
        listed = self.client.list(self.resource, label_selector=self.label_selector,
                                  field_selector=self.field_selector)
        fresh = {object_key(o): o for o in listed["items"]}
        for key in set(self.list_keys()) - set(fresh):
            old = self._store(key, None)
            self._notify(old, None)
        for key, obj in fresh.items():
            old = self._store(key, obj)
            if old is None or old.get("metadata", {}).get("resourceVersion") != \
                    obj.get("metadata", {}).get("resourceVersion"):
                self._notify(old, obj)
        self.resource_version = listed["metadata"].get("resourceVersion") or "0"
        self.relists += 1
        log.debug("listed resource=%s items=%d rv=%s", self.resource.plural, len(fresh),
                  self.resource_version)
        self._synced.set()

    def _apply(self, event: JSON) -> None:
        etype = event.get("type")
        obj = event.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "BOOKMARK":
            self.resource_version = rv or self.resource_version
            return
        key = object_key(obj)
        if etype in ("ADDED", "MODIFIED"):
            old = self._store(key, obj)
            self._notify(old, obj)
        elif etype == "DELETED":
            old = self._store(key, None)
            self._notify(old if old is not None else obj, None)
        if rv:
            self.resource_version = rv

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch_once()
                backoff.reset()
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch expired, relisting resource=%s", self.resource.plural)
                    self.resource_version = None
                    continue
                delay = backoff.next()
                log.warning("api error resource=%s status=%s reason=%s retry_in=%.1fs",
                            self.resource.plural, exc.status, exc.reason, delay)
                self._stop.wait(delay)
            except Exception as exc:
                if self._stop.is_set():
                    break
                delay = backoff.next()
                log.warning("watch failed resource=%s error=%r retry_in=%.1fs",
                            self.resource.plural, exc, delay)
                self._stop.wait(delay)

    def _watch_once(self) -> None:
        assert self.resource_version is not None
        # Spread the server-side timeouts so informers do not all reconnect together.
        timeout = int(self.watch_timeout * random.uniform(1.0, 1.5))
        stream = self.client.watch(self.resource, self.resource_version,
                                   label_selector=self.label_selector,
                                   field_selector=self.field_selector,
                                   timeout_seconds=timeout)
        self._stream = stream
        try:
            if self._stop.is_set():
                return
            for event in stream:
                if self._stop.is_set():
                    return
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code = int(status.get("code") or 500)
                    raise ApiException(status=code, reason=status.get("message", ""))
                self._apply(event)
        finally:
            self._stream = None
            stream.close()


class WorkQueue:
    """A deduplicating FIFO of keys with delayed adds and per-key retry backoff."""

    def __init__(self, name: str, base_delay: float = 0.1, max_delay: float = 30.0) -> None:
        self.name = name
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._seq = 0
        self._failures: dict[str, int] = {}
        self._base, self._max = base_delay, max_delay
        self._cond = threading.Condition()
        self._shutdown = False

    def add(self, key: str) -> None:
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: str) -> float:
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(self._base * (2 ** n), self._max)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def _promote_due(self) -> float | None:
        """Move due delayed keys to the queue; return seconds until the next one."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float | None = None) -> str | None:
        """Next key, or None on shutdown/timeout. Call done(key) after processing."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                wait = self._promote_due()
                if self._shutdown:
                    return None
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shut_down(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)


class Controller:
    """Base for one controller: a work queue, worker threads and `reconcile(key)`.

    Subclasses wire informer handlers to `self.queue.add` and implement reconcile;
    raising from reconcile retries the key with exponential backoff.
    """

    name = "controller"
    workers = 1

    def __init__(self) -> None:
        self.queue = WorkQueue(self.name)
        self.log = logging.getLogger(f"antrea.lab.controllers.{self.name}")
        self._threads: list[threading.Thread] = []

    def informers(self) -> list[Informer]:
        """Informers that must be synced before workers start."""
        return []

    def reconcile(self, key: str) -> None:
        raise NotImplementedError

    def on_synced(self) -> None:
        """Called once after every informer synced, before workers start."""

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, daemon=True, name=f"{self.name}-{i}")
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.shut_down()
        for t in self._threads:
            t.join(timeout)

    def _work(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self.reconcile(key)
                self.queue.forget(key)
            except Exception as exc:
                delay = self.queue.add_rate_limited(key)
                if isinstance(exc, ApiException) and exc.status == 409:
                    # Our cached copy was stale; routine with concurrent writers.
                    self.log.info("conflict, retrying key=%s retry_in=%.2fs", key, delay)
                elif isinstance(exc, ApiException):
                    self.log.warning("reconcile failed key=%s status=%s reason=%s retry_in=%.2fs",
                                     key, exc.status, exc.reason, delay)
                else:
                    self.log.exception("reconcile failed key=%s retry_in=%.2fs", key, delay)
            finally:
                self.queue.done(key)

