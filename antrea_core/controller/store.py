"""The controller's store of control-plane objects and the per-node event streams.

The computation publishes every object with its span (`upsert`/`delete`). For each node
that watches, the store turns a change into that node's events, comparing the old and
new span (what a node holds is exactly the objects whose span holds it):

- the object enters the node's span        -> ADDED (the whole object)
- it leaves the node's span                -> DELETED
- a group in span whose members changed    -> MODIFIED with a `GroupPatch`
- a policy in span that changed            -> MODIFIED (the whole policy)

Event objects are shared by every node that gets them (the patch is computed once), so
the encoder can serialize each once. Each watched node has a bounded history of its
events; an agent reconnecting with its last resource version gets only what it missed,
or a snapshot when that history is gone. Resource versions are "<epoch>.<n>": the epoch
changes when the controller restarts, so an old version never resumes into a new store.

One lock guards everything: changes come from informer threads, watchers run on gRPC
threads and wait on per-node conditions sharing that lock. With no watcher a change
costs one dict update.
"""

from __future__ import annotations

import collections
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    ControlPlaneObject,
    EventType,
    GroupPatch,
    NetworkPolicy,
    ObjectKind,
    WatchEvent,
    kind_of,
)

log = logging.getLogger("antrea.controller.store")

DEFAULT_HISTORY_SIZE = 1000
# A node's history is kept this long after its last watcher left, so it can resume.
DEFAULT_IDLE_VIEW_TTL = 600.0
EXPIRY_INTERVAL = 30.0

Key = tuple[ObjectKind, str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one node holds at `version`."""

    version: str
    policies: list[NetworkPolicy]
    applied_to_groups: list[AppliedToGroup]
    address_groups: list[AddressGroup]


@dataclass(slots=True)
class _NodeView:
    """One watched node: its event history (oldest first) and who waits on it."""

    cond: threading.Condition
    history: collections.deque[tuple[int, WatchEvent]]
    # Every event of this node with n > floor is in `history`.
    floor: int
    watchers: int = 0
    idle_since: float = field(default_factory=time.monotonic)


class PolicyStore:
    """`ControlPlaneStore` that also serves span-filtered watches and queries."""

    def __init__(self, history_size: int = DEFAULT_HISTORY_SIZE,
                 idle_view_ttl: float = DEFAULT_IDLE_VIEW_TTL) -> None:
        self._lock = threading.Lock()
        self._objects: dict[Key, tuple[ControlPlaneObject, frozenset[str]]] = {}
        self._views: dict[str, _NodeView] = {}
        self._n = 0
        self._epoch = secrets.token_hex(4)
        self._history_size = history_size
        self._idle_view_ttl = idle_view_ttl
        self._closed = False
        self._last_expiry = time.monotonic()

    # --- ControlPlaneStore (the computation's side) ----------------------------------

    def upsert(self, obj: ControlPlaneObject, span: frozenset[str]) -> None:
        kind = kind_of(obj)
        key = (kind, obj.name)
        span = frozenset(span)
        with self._lock:
            old = self._objects.get(key)
            old_obj, old_span = old if old is not None else (None, frozenset())
            changed = old_obj != obj
            if old is not None and old_span == span and not changed:
                return
            self._objects[key] = (obj, span)
            if not self._views:
                self._n += 1  # every change moves the version, watched or not
                return
            added = deleted = modified = None
            per_node: list[tuple[_NodeView, WatchEvent]] = []
            for node, view in self._views.items():
                was, now = node in old_span, node in span
                if now and not was:
                    added = added or WatchEvent(EventType.ADDED, kind, obj.name, obj)
                    per_node.append((view, added))
                elif was and not now:
                    deleted = deleted or WatchEvent(EventType.DELETED, kind, obj.name)
                    per_node.append((view, deleted))
                elif was and now and changed:
                    modified = modified or _modified_event(old_obj, obj)
                    if modified is not None:
                        per_node.append((view, modified))
            self._publish(per_node)

    def delete(self, kind: ObjectKind, name: str) -> None:
        key = (kind, name)
        with self._lock:
            old = self._objects.pop(key, None)
            if old is None:
                return
            if not self._views:
                self._n += 1
                return
            event = WatchEvent(EventType.DELETED, kind, name)
            self._publish([(view, event) for node, view in self._views.items()
                           if node in old[1]])

    def _publish(self, per_node: list[tuple[_NodeView, WatchEvent]]) -> None:
        # Caller holds the lock. One version per change, even when no node gets an event,
        # so versions order all changes.
        self._n += 1
        now = time.monotonic()
        if now - self._last_expiry > min(EXPIRY_INTERVAL, self._idle_view_ttl):
            self._last_expiry = now
            self._expire_idle_views()
        for view, event in per_node:
            if len(view.history) == self._history_size:
                view.floor = view.history.popleft()[0]
            view.history.append((self._n, event))
            view.cond.notify_all()

    # --- queries ---------------------------------------------------------------------

    def list(self, kind: ObjectKind, node: str | None = None,
             name: str | None = None) -> list[tuple[ControlPlaneObject, frozenset[str]]]:
        """Objects of `kind` (optionally one `name`) with their spans; with `node`, only
        those whose span holds it. Sorted by name."""
        with self._lock:
            if name is not None:
                found = self._objects.get((kind, name))
                items = [found] if found is not None else []
            else:
                items = [v for k, v in self._objects.items() if k[0] == kind]
        if node is not None:
            items = [(o, s) for o, s in items if node in s]
        return sorted(items, key=lambda item: item[0].name)

    @property
    def version(self) -> str:
        with self._lock:
            return self._version(self._n)

    # --- watches ---------------------------------------------------------------------

    def watch(self, node: str) -> NodeWatcher:
        """A cursor over `node`'s events; call `start` then `next` repeatedly, `close`."""
        return NodeWatcher(self, node)

    def close(self) -> None:
        """Wake every watcher so that it returns (server shutdown)."""
        with self._lock:
            self._closed = True
            for view in self._views.values():
                view.cond.notify_all()

    def watched_nodes(self) -> list[str]:
        with self._lock:
            return sorted(self._views)

    def _version(self, n: int) -> str:
        return f"{self._epoch}.{n}"

    def _parse_version(self, version: str) -> int | None:
        epoch, _, n = version.partition(".")
        if epoch != self._epoch or not n.isdigit():
            return None
        return int(n)

    def _attach(self, node: str) -> _NodeView:
        # Caller holds the lock.
        self._expire_idle_views()
        view = self._views.get(node)
        if view is None:
            view = _NodeView(threading.Condition(self._lock),
                             collections.deque(maxlen=self._history_size), self._n)
            self._views[node] = view
            log.info("node watches node=%s watched_nodes=%d", node, len(self._views))
        view.watchers += 1
        return view

    def _detach(self, view: _NodeView) -> None:
        with self._lock:
            view.watchers -= 1
            if view.watchers == 0:
                view.idle_since = time.monotonic()

    def _expire_idle_views(self) -> None:
        now = time.monotonic()
        for node in [n for n, v in self._views.items()
                     if v.watchers == 0 and now - v.idle_since > self._idle_view_ttl]:
            del self._views[node]
            log.info("forgot idle node history node=%s", node)

    def _snapshot(self, node: str) -> Snapshot:
        # Caller holds the lock.
        policies, atgs, ags = [], [], []
        for obj, span in self._objects.values():
            if node not in span:
                continue
            if isinstance(obj, NetworkPolicy):
                policies.append(obj)
            elif isinstance(obj, AppliedToGroup):
                atgs.append(obj)
            else:
                ags.append(obj)
        return Snapshot(self._version(self._n), policies, atgs, ags)


class NodeWatcher:
    """One stream's position in one node's events."""

    def __init__(self, store: PolicyStore, node: str) -> None:
        self.node = node
        self._store = store
        self._view: _NodeView | None = None
        self._cursor = 0

    def start(self, resume_from: str = "") -> Snapshot | None:
        """Attach; None when resuming from `resume_from` is possible (the events after it
        follow from `next`), else the node's snapshot."""
        store = self._store
        with store._lock:
            self._view = view = store._attach(self.node)
            n = store._parse_version(resume_from) if resume_from else None
            if n is not None and view.floor <= n <= store._n:
                self._cursor = n
                return None
            return self._resync()

    def _resync(self) -> Snapshot:
        # Caller holds the lock.
        self._cursor = self._store._n
        return self._store._snapshot(self.node)

    def next(self, timeout: float, max_events: int = 500
             ) -> list[tuple[str, WatchEvent]] | Snapshot:
        """The events after the cursor (waiting up to `timeout` for some; [] on timeout or
        close), each with its version; or a Snapshot when this watcher fell further behind
        than the history keeps."""
        view = self._view
        assert view is not None, "start() first"
        store = self._store
        with store._lock:
            deadline = time.monotonic() + timeout
            while not store._closed:
                if self._cursor < view.floor:
                    log.warning("watcher fell behind history, resending snapshot node=%s",
                                self.node)
                    return self._resync()
                if view.history and view.history[-1][0] > self._cursor:
                    pending = list(itertools.islice(self._pending(view), max_events))
                    self._cursor = pending[-1][0]
                    return [(store._version(n), ev) for n, ev in pending]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                view.cond.wait(remaining)
            return []

    def _pending(self, view: _NodeView) -> Iterator[tuple[int, WatchEvent]]:
        # The history is short and ordered: scan back from the newest entry.
        start = len(view.history)
        while start > 0 and view.history[start - 1][0] > self._cursor:
            start -= 1
        return itertools.islice(view.history, start, None)

    def bookmark(self) -> str:
        """The current version, once `next` has returned everything before it: a valid
        position to resume from."""
        store = self._store
        view = self._view
        assert view is not None
        with store._lock:
            if view.history and view.history[-1][0] > self._cursor:
                return store._version(self._cursor)
            self._cursor = store._n
            return store._version(store._n)

    def wake(self) -> None:
        """Make a waiting `next` re-check (its stream was cancelled)."""
        if self._view is not None:
            with self._store._lock:
                self._view.cond.notify_all()

    def close(self) -> None:
        if self._view is not None:
            self._store._detach(self._view)
            self._view = None


def _modified_event(old: ControlPlaneObject | None, new: ControlPlaneObject
                    ) -> WatchEvent | None:
    kind = kind_of(new)
    if isinstance(new, AppliedToGroup | AddressGroup) and isinstance(old, type(new)):
        if old.members == new.members:
            return None
        patch = GroupPatch(kind, new.name, new.members - old.members,
                           old.members - new.members)
        return WatchEvent(EventType.MODIFIED, kind, new.name, patch=patch)
    return WatchEvent(EventType.MODIFIED, kind, new.name, new)
