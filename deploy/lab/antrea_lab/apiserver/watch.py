"""Watch streams: newline-delimited JSON events over a chunked HTTP response.

`open_watch` does the synchronous part (history replay or initial state, then watcher
registration) before the first await, so no event can fall between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .errors import APIError, gone
from .registry import ResourceInfo
from .selectors import Predicate
from .storage import Entry, Store, Watcher, dumps

log = logging.getLogger("antrea.lab.apiserver.watch")

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
COALESCE_SECONDS = 0.005

# Renders an event's object (default: the stored JSON; Table output re-renders).
Renderer = Callable[[Entry], bytes]


@dataclass
class WatchRequest:
    info: ResourceInfo
    namespace: str | None
    predicate: Predicate | None
    resource_version: str
    allow_bookmarks: bool
    timeout: float | None
    send_initial_events: bool | None


def _line(kind: str, raw: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


def _status_line(err: APIError) -> bytes:
    return _line("ERROR", dumps(err.to_status()))


class WatchStream:
    def __init__(self, store: Store, req: WatchRequest, bookmark_interval: float,
                 render: Renderer | None) -> None:
        self.store = store
        self.req = req
        self.bookmark_interval = bookmark_interval
        self.render = render
        self.watcher = Watcher(req.namespace, req.predicate, store.watcher_max_pending)
        self.initial: list[bytes] = []
        self.error: APIError | None = None
        self.rs = store.resource(req.info)

    def open(self) -> None:
        """Replay + register, synchronously (atomic on the event loop)."""
        req, w = self.req, self.watcher
        rv = req.resource_version
        initial_state = req.send_initial_events if req.send_initial_events is not None \
            else rv in ("", "0")
        if initial_state:
            for _, entry in self.store.items(req.info, req.namespace if req.info.namespaced
                                             else None):
                if w.matches(entry.obj):
                    self.initial.append(self._render("ADDED", entry))
            if req.send_initial_events and req.allow_bookmarks:
                self.initial.append(self._bookmark(initial_end=True))
        elif rv not in ("", "0"):
            try:
                start = int(rv)
            except ValueError:
                self.error = APIError(400, "BadRequest", f'invalid resource version "{rv}"')
                return
            events = self.rs.events_after(start)
            if events is None:
                self.error = gone(f"too old resource version: {start} ({self.rs.compacted_rv})")
                return
            for ev in events:
                kind = w.translate(ev)
                if kind is not None:
                    self.initial.append(self._render(kind, ev.entry))
        self.rs.watchers.add(w)

    def close(self) -> None:
        self.rs.watchers.discard(self.watcher)

    def _render(self, kind: str, entry: Entry) -> bytes:
        raw = self.render(entry) if self.render is not None else entry.raw
        return _line(kind, raw)

    def _bookmark(self, initial_end: bool = False) -> bytes:
        md: dict[str, object] = {"resourceVersion": str(self.store.rv)}
        if initial_end:
            md["annotations"] = {INITIAL_EVENTS_END: "true"}
        return _line("BOOKMARK", dumps({"kind": self.req.info.kind,
                                        "apiVersion": self.req.info.group_version,
                                        "metadata": md}))

    async def serve(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            if self.error is not None:
                await resp.write(_status_line(self.error))
                return resp
            if self.initial:
                await resp.write(b"".join(self.initial))
                self.initial = []
            await self._pump(resp)
        except ConnectionError:
            return resp  # the client went away: nothing to report
        finally:
            self.close()
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp

    async def _pump(self, resp: web.StreamResponse) -> None:
        w = self.watcher
        deadline = time.monotonic() + self.req.timeout if self.req.timeout else None
        while True:
            if not w.buf and not w.expired:
                w.wake.clear()
                wait = self.bookmark_interval if self.req.allow_bookmarks else 3600.0
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return
                try:
                    async with asyncio.timeout(wait):
                        await w.wake.wait()
                    # Let a burst of writes accumulate: one TLS write for many events.
                    await asyncio.sleep(COALESCE_SECONDS)
                except TimeoutError:
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    if self.req.allow_bookmarks and not w.buf:
                        await resp.write(self._bookmark())
                    continue
            if w.expired:
                await resp.write(_status_line(gone(
                    "the watcher fell too far behind and was closed; relist")))
                return
            chunk = []
            while w.buf:
                kind, entry = w.buf.popleft()
                chunk.append(self._render(kind, entry))
            await resp.write(b"".join(chunk))
