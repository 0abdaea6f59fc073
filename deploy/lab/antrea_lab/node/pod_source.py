"""The kubelet's view of its pods: list + watch with spec.nodeName=<node>.

Watches resume from the last resourceVersion; a 410 Gone (or any error) leads to a relist,
which also reports pods deleted while the watch was down. Objects are plain dicts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

log = logging.getLogger("antrea.lab.kubelet.pods")

WATCH_TIMEOUT = 300


class PodSource:
    """Keeps ``pods`` (uid → pod dict) current and calls ``on_change(uid)`` for changes."""

    def __init__(self, api: client.CoreV1Api, node: str,
                 on_change: Callable[[str], None],
                 on_synced: Callable[[set[str]], None] | None = None) -> None:
        self.api = api
        self.node = node
        self.on_change = on_change
        self.on_synced = on_synced
        self.pods: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._loop, name="pod-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def get(self, uid: str) -> dict[str, Any] | None:
        with self.lock:
            return self.pods.get(uid)

    def uids(self) -> list[str]:
        with self.lock:
            return list(self.pods)

    def _selector(self) -> str:
        return f"spec.nodeName={self.node}"

    def _list(self) -> str:
        resp = self.api.list_pod_for_all_namespaces(
            field_selector=self._selector(), _preload_content=False)
        doc = json.loads(resp.data)
        fresh = {p["metadata"]["uid"]: p for p in doc.get("items") or []}
        with self.lock:
            gone = set(self.pods) - set(fresh)
            changed = [uid for uid, p in fresh.items()
                       if self.pods.get(uid, {}).get("metadata", {}).get("resourceVersion")
                       != p["metadata"].get("resourceVersion")]
            self.pods = fresh
        if not self.synced.is_set():
            self.synced.set()  # before any on_change: syncs wait for the first list
            if self.on_synced is not None:
                self.on_synced(set(fresh))
        for uid in [*gone, *changed]:
            self.on_change(uid)
        return str(doc.get("metadata", {}).get("resourceVersion") or "")

    def _loop(self) -> None:
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                rv = self._watch_from(rv)
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch expired (410), relisting")
                else:
                    log.warning("pod watch failed status=%s reason=%s", exc.status, exc.reason)
                    self._stop.wait(1.0)
                rv = ""
            except Exception as exc:
                log.warning("pod watch error: %s", exc)
                self._stop.wait(1.0)
                rv = ""

    def _watch_from(self, rv: str) -> str:
        self._watch = watch.Watch()
        for event in self._watch.stream(
            self.api.list_pod_for_all_namespaces,
            field_selector=self._selector(),
            resource_version=rv,
            timeout_seconds=WATCH_TIMEOUT,
            allow_watch_bookmarks=True,
            deserialize=False,
        ):
            if self._stop.is_set():
                break
            obj = event["object"]
            rv = obj.get("metadata", {}).get("resourceVersion") or rv
            if event["type"] == "BOOKMARK":
                continue
            uid = obj["metadata"]["uid"]
            with self.lock:
                if event["type"] == "DELETED":
                    self.pods.pop(uid, None)
                else:
                    self.pods[uid] = obj
            self.on_change(uid)
        return rv
