"""Kubernetes plumbing: list then watch Services and EndpointSlices as raw dicts.

Kept behind `ResourceWatch` so the rest of the plugin never sees the client: each watch
delivers `(key, object-or-None)` to a callback and a full snapshot after every (re)list.
It resumes from the last resourceVersion, relists on 410 Gone and backs off on errors.
(A shared raw-dict informer in antrea_core can replace this class without touching the
flow computation.)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes

log = logging.getLogger("antrea.agent.proxy.watch")

JSON = Mapping[str, Any]
OnEvent = Callable[[str, JSON | None], None]
OnSnapshot = Callable[[dict[str, JSON]], None]


def object_key(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class ResourceWatch:
    def __init__(self, what: str, list_func: Callable[..., Any], on_event: OnEvent,
                 on_snapshot: OnSnapshot) -> None:
        self.what = what
        self.list_func = list_func
        self.on_event = on_event
        self.on_snapshot = on_snapshot
        self._thread: threading.Thread | None = None

    def sync(self) -> str:
        """List everything, hand over the snapshot; returns the list's resourceVersion."""
        resp = self.list_func(_preload_content=False, _request_timeout=60)
        body = json.loads(resp.data)
        items = {object_key(o): o for o in body.get("items") or []}
        self.on_snapshot(items)
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    def start(self, stop: threading.Event, rv: str) -> None:
        self._thread = threading.Thread(target=self._run, args=(stop, rv),
                                        name=f"proxy-watch-{self.what}", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event, rv: str) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                rv = self._watch(stop, rv)
                backoff = 0.5
                continue
            except kubernetes.client.ApiException as exc:
                if exc.status == 410:
                    rv = self._relist(stop)
                    continue
                log.warning("%s watch failed status=%s; retrying", self.what, exc.status)
            except Exception:
                log.exception("%s watch failed; retrying", self.what)
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _relist(self, stop: threading.Event) -> str:
        while not stop.is_set():
            try:
                return self.sync()
            except Exception:
                log.exception("%s relist failed; retrying", self.what)
                stop.wait(1.0)
        return ""

    def _watch(self, stop: threading.Event, rv: str) -> str:
        watch = kubernetes.watch.Watch()
        for event in watch.stream(self.list_func, resource_version=rv, timeout_seconds=60,
                                  allow_watch_bookmarks=True, _request_timeout=90):
            if stop.is_set():
                watch.stop()
                break
            kind, raw = event["type"], event["raw_object"]
            if kind == "ERROR":
                if raw.get("code") == 410:
                    return self._relist(stop)
                raise RuntimeError(f"watch error: {raw.get('message')}")
            rv = (raw.get("metadata") or {}).get("resourceVersion", rv)
            if kind in ("ADDED", "MODIFIED"):
                self.on_event(object_key(raw), raw)
            elif kind == "DELETED":
                self.on_event(object_key(raw), None)
        return rv
