"""In-memory object storage with one resourceVersion counter, watch history and watchers.

Everything here is synchronous and runs on the server's event loop: a write assigns the
next resourceVersion, stores the object, appends to the resource's history and hands the
event to every watcher without an await in between. A watch handler can therefore
replay history and register itself in one step, with no lock and no gap.

Stored objects are never mutated after being stored; each version also keeps its JSON
encoding so GET, LIST, watch lines and persistence all reuse one serialization.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .registry import ResourceInfo

log = logging.getLogger("antrea.lab.apiserver.storage")

Key = tuple[str, str]  # (namespace or "", name)
Predicate = Callable[[dict[str, Any]], bool]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Entry:
    """One stored version of an object and its JSON encoding."""

    __slots__ = ("obj", "raw")

    def __init__(self, obj: dict[str, Any], raw: bytes | None = None) -> None:
        self.obj = obj
        self.raw = raw if raw is not None else dumps(obj)


class Event:
    __slots__ = ("entry", "prev", "rv", "type")

    def __init__(self, type_: str, rv: int, entry: Entry, prev: Entry | None) -> None:
        self.type = type_
        self.rv = rv
        self.entry = entry
        self.prev = prev


class Watcher:
    """A registered watch: filters events and buffers them for its HTTP stream.

    The buffer is bounded: a watcher that falls more than `max_pending` events behind is
    dropped and told 410 Expired (its client relists), so a stuck client cannot grow the
    server's memory.
    """

    __slots__ = ("buf", "expired", "max_pending", "namespace", "predicate", "wake")

    def __init__(self, namespace: str | None, predicate: Predicate | None,
                 max_pending: int) -> None:
        self.namespace = namespace
        self.predicate = predicate
        self.buf: deque[tuple[str, Entry]] = deque()
        self.wake = asyncio.Event()
        self.expired = False
        self.max_pending = max_pending

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate is None or self.predicate(obj)

    def translate(self, ev: Event) -> str | None:
        """The event type this watcher sees (selectors turn MODIFIED into ADDED/DELETED)."""
        now = self.matches(ev.entry.obj)
        if ev.type != "MODIFIED":
            return ev.type if now else None
        before = self.matches(ev.prev.obj) if ev.prev is not None else False
        if now:
            return "MODIFIED" if before else "ADDED"
        return "DELETED" if before else None

    def offer(self, ev: Event) -> bool:
        """Queue a live event; False if the watcher overflowed and must be dropped."""
        kind = self.translate(ev)
        if kind is None:
            return True
        if len(self.buf) >= self.max_pending:
            self.buf.clear()
            self.expired = True
            self.wake.set()
            return False
        self.buf.append((kind, ev.entry))
        self.wake.set()
        return True


class ResourceStore:
    """The objects, bounded history and watchers of one (group, resource)."""

    def __init__(self, info: ResourceInfo, window: int, compacted_rv: int) -> None:
        self.info = info
        self.objects: dict[Key, Entry] = {}
        self.history: deque[Event] = deque()
        self.window = window
        # Events with rv <= compacted_rv may be missing from history: watching from
        # older versions answers 410 Expired.
        self.compacted_rv = compacted_rv
        self.watchers: set[Watcher] = set()

    def record(self, ev: Event) -> None:
        self.history.append(ev)
        if len(self.history) > self.window:
            self.compacted_rv = self.history.popleft().rv
        dropped = [w for w in self.watchers if not w.offer(ev)]
        for w in dropped:
            log.info("dropping slow watcher resource=%s pending_limit=%d",
                     self.info.resource, w.max_pending)
            self.watchers.discard(w)

    def close_watchers(self) -> None:
        """End every watch (the resource stops being served): clients get 410 and relist."""
        for w in self.watchers:
            w.buf.clear()
            w.expired = True
            w.wake.set()
        self.watchers.clear()

    def events_after(self, rv: int) -> list[Event] | None:
        """History after `rv`, or None when part of it has been compacted away."""
        if rv < self.compacted_rv:
            return None
        out: list[Event] = []
        for ev in reversed(self.history):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out


class Persistence(Protocol):
    def record(self, key: str, raw: bytes | None, rv: int) -> None: ...


def storage_key(info: ResourceInfo, key: Key) -> str:
    return f"{info.group}/{info.resource}/{key[0]}/{key[1]}"


class Store:
    """All resources; the single source of resourceVersions."""

    def __init__(self, window: int = 10_000, watcher_max_pending: int = 10_000,
                 persistence: Persistence | None = None, rv: int = 0) -> None:
        self.rv = rv
        # History starts here: events before it (a previous run) are unknown.
        self.start_rv = rv
        self.window = window
        self.watcher_max_pending = watcher_max_pending
        self.persistence = persistence
        self.resources: dict[tuple[str, str], ResourceStore] = {}

    def resource(self, info: ResourceInfo) -> ResourceStore:
        rs = self.resources.get((info.group, info.resource))
        if rs is None:
            rs = ResourceStore(info, self.window, self.start_rv)
            self.resources[(info.group, info.resource)] = rs
        elif rs.info != info:
            rs.info = info  # a CRD update may change names/versions
        return rs

    def drop_resource(self, info: ResourceInfo) -> None:
        self.resources.pop((info.group, info.resource), None)

    def load(self, info: ResourceInfo, objects: Iterable[tuple[dict[str, Any], bytes]]) -> None:
        """Put objects read from persistence back without events."""
        rs = self.resource(info)
        for obj, raw in objects:
            md = obj["metadata"]
            rs.objects[(md.get("namespace", ""), md["name"])] = Entry(obj, raw)

    def write(self, info: ResourceInfo, obj: dict[str, Any], prev: Entry | None) -> Entry:
        """Store a new version (ADDED if there was none): assigns the next resourceVersion."""
        rs = self.resource(info)
        self.rv += 1
        md = obj["metadata"]
        md["resourceVersion"] = str(self.rv)
        key = (md.get("namespace", ""), md["name"])
        entry = Entry(obj)
        rs.objects[key] = entry
        rs.record(Event("MODIFIED" if prev is not None else "ADDED", self.rv, entry, prev))
        if self.persistence is not None:
            self.persistence.record(storage_key(info, key), entry.raw, self.rv)
        return entry

    def delete(self, info: ResourceInfo, key: Key) -> Entry | None:
        """Remove an object; the DELETED event carries it with a fresh resourceVersion."""
        rs = self.resource(info)
        prev = rs.objects.pop(key, None)
        if prev is None:
            return None
        self.rv += 1
        obj = dict(prev.obj)
        obj["metadata"] = dict(obj["metadata"], resourceVersion=str(self.rv))
        entry = Entry(obj)
        rs.record(Event("DELETED", self.rv, entry, prev))
        if self.persistence is not None:
            self.persistence.record(storage_key(info, key), None, self.rv)
        return entry

    def get(self, info: ResourceInfo, namespace: str, name: str) -> Entry | None:
        rs = self.resources.get((info.group, info.resource))
        if rs is None:
            return None
        return rs.objects.get((namespace if info.namespaced else "", name))

    def items(self, info: ResourceInfo, namespace: str | None = None) -> list[tuple[Key, Entry]]:
        """Objects in key order (namespace, name), optionally of one namespace."""
        rs = self.resources.get((info.group, info.resource))
        if rs is None:
            return []
        if namespace is None:
            return sorted(rs.objects.items(), key=_by_key)
        return sorted(((k, e) for k, e in rs.objects.items() if k[0] == namespace), key=_by_key)


def _by_key(item: tuple[Key, Entry]) -> Key:
    return item[0]
