"""Wire bytes of the server's responses, built from cached encodings.

The store hands the same event object to every node that gets it, so each event is
serialized once (cache keyed by identity) and its bytes are framed into every watcher's
`WatchResponse`; with 10 watchers a 10,000-member group is encoded once, not 10 times.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from antrea_core.apis import controlplane_codec as codec
from antrea_core.apis import controlplane_pb2 as pb
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    ControlPlaneObject,
    NetworkPolicy,
    WatchEvent,
)

EVENT_CACHE_SIZE = 2048

# WatchResponse fields
_RV, _START, _EVENTS, _SNAPSHOT_END, _BOOKMARK = 1, 2, 3, 4, 5
_BATCH_EVENTS = 1  # EventBatch.events
_ITEM_OBJECT, _ITEM_SPAN = 1, 2  # *Item
_LIST_ITEMS = 1  # *List.items


class EventEncoder:
    """Serializes events once; thread-safe (a race at worst encodes twice)."""

    def __init__(self, size: int = EVENT_CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        # id(event) -> (event, bytes); the entry keeps the event alive so ids stay unique.
        self._cache: dict[int, tuple[WatchEvent, bytes]] = {}

    def encode(self, event: WatchEvent) -> bytes:
        hit = self._cache.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        data = codec.event_bytes(event)
        with self._lock:
            if len(self._cache) >= self._size:
                self._cache.clear()
            self._cache[id(event)] = (event, data)
        return data

    def events_response(self, version: str, events: Iterable[WatchEvent],
                        shared: bool = True) -> bytes:
        """A WatchResponse with one EventBatch; `shared=False` for events made for one
        stream only (snapshots), which would only churn the cache."""
        encode = self.encode if shared else codec.event_bytes
        batch = b"".join(codec.length_delimited(_BATCH_EVENTS, encode(ev)) for ev in events)
        return _rv(version) + codec.length_delimited(_EVENTS, batch)


def _rv(version: str) -> bytes:
    return codec.length_delimited(_RV, version.encode()) if version else b""


def start_response(resumed: bool, version: str = "") -> bytes:
    return pb.WatchResponse(resource_version=version,
                            start=pb.WatchStart(resumed=resumed)).SerializeToString()


def snapshot_end_response(version: str) -> bytes:
    return _rv(version) + codec.length_delimited(_SNAPSHOT_END, b"")


def bookmark_response(version: str) -> bytes:
    return _rv(version) + codec.length_delimited(_BOOKMARK, b"")


def object_bytes(obj: ControlPlaneObject) -> bytes:
    if isinstance(obj, NetworkPolicy):
        return codec.policy_to_pb(obj).SerializeToString()
    assert isinstance(obj, AppliedToGroup | AddressGroup)
    return codec.group_bytes(obj)


def item_bytes(obj: ControlPlaneObject, span: Iterable[str]) -> bytes:
    """A NetworkPolicyItem / AppliedToGroupItem / AddressGroupItem."""
    return codec.length_delimited(_ITEM_OBJECT, object_bytes(obj)) + b"".join(
        codec.length_delimited(_ITEM_SPAN, node.encode()) for node in sorted(span))


def list_bytes(items: Iterable[tuple[ControlPlaneObject, frozenset[str]]]) -> bytes:
    return b"".join(codec.length_delimited(_LIST_ITEMS, item_bytes(o, s)) for o, s in items)
