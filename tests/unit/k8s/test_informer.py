"""Informer against the lab API server: list, watch, resume, bookmarks, 410 relist, stop."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from waiting import wait_for

from antrea_core.k8s.clientconfig import api_client
from antrea_core.k8s.informer import Backoff, Informer, object_key
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import CONFIG_MAPS, NAMESPACES

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # (what, key, data["v"])
        self.synced_calls = 0
        self.lock = threading.Lock()

    def _rec(self, what: str, obj: dict) -> None:
        with self.lock:
            self.events.append((what, object_key(obj), (obj.get("data") or {}).get("v", "")))

    def on_add(self, obj: dict) -> None:
        self._rec("add", obj)

    def on_update(self, old: dict, new: dict) -> None:
        assert object_key(old) == object_key(new)
        self._rec("update", new)

    def on_delete(self, obj: dict) -> None:
        self._rec("delete", obj)

    def on_synced(self) -> None:
        self.synced_calls += 1

    def take(self) -> list[tuple[str, str, str]]:
        with self.lock:
            out, self.events = self.events, []
        return out


def cm(name: str, v: str = "1") -> dict:
    return {"metadata": {"name": name}, "data": {"v": v}}


def make_informer(raw: RawClient, rec: Recorder, **kw: Any) -> Informer:
    inf = Informer(raw, CONFIG_MAPS, namespace="default", **kw)
    inf.add_handler(rec)
    return inf


def test_lists_then_delivers_watch_events_in_order(raw: RawClient):
    raw.create(CONFIG_MAPS, cm("a"), "default")
    raw.create(CONFIG_MAPS, cm("b"), "default")
    rec = Recorder()
    inf = make_informer(raw, rec)
    inf.start()
    try:
        assert inf.wait_synced(10)
        assert sorted(rec.take()) == [("add", "default/a", "1"), ("add", "default/b", "1")]
        assert rec.synced_calls == 1
        raw.create(CONFIG_MAPS, cm("c"), "default")
        raw.patch(CONFIG_MAPS, "a", {"data": {"v": "2"}}, "default")
        raw.delete(CONFIG_MAPS, "b", "default")
        wait_for(lambda: len(rec.events) >= 3, 10, "three watch events")
        assert rec.take() == [("add", "default/c", "1"), ("update", "default/a", "2"),
                              ("delete", "default/b", "1")]
        assert sorted(o["metadata"]["name"] for o in inf.list()) == ["a", "c"]
        assert inf.get("default/a")["data"] == {"v": "2"}
        assert inf.lists == 1
    finally:
        inf.stop()


def test_watch_timeout_resumes_from_last_version_without_relisting(raw: RawClient):
    rec = Recorder()
    inf = make_informer(raw, rec, watch_timeout=1)
    inf.start()
    try:
        assert inf.wait_synced(10)
        wait_for(lambda: inf.watches >= 3, 15, "the watch to time out and reopen twice")
        raw.create(CONFIG_MAPS, cm("late"), "default")
        wait_for(lambda: rec.events, 10, "the event after the reconnects")
        time.sleep(1.5)  # one more reconnect: a resumed watch must not replay the event
        assert rec.take() == [("add", "default/late", "1")]
        assert inf.lists == 1
    finally:
        inf.stop()


def test_bookmarks_advance_resource_version_of_a_quiet_watch(raw: RawClient):
    rec = Recorder()
    inf = make_informer(raw, rec)
    inf.start()
    try:
        assert inf.wait_synced(10)
        listed_rv = int(inf.resource_version or 0)
        raw.create(NAMESPACES, {"metadata": {"name": "elsewhere"}})
        raw.create(CONFIG_MAPS, cm("x"), "elsewhere")
        wait_for(lambda: int(inf.resource_version or 0) > listed_rv, 10,
                 "a bookmark carrying the newer resourceVersion")
        assert rec.take() == []
    finally:
        inf.stop()


def test_expired_version_relists_and_delivers_the_difference(start_apiserver):
    srv = start_apiserver(history_window=3)
    raw = RawClient(api_client(str(srv.kubeconfig)))
    for name in ("a", "b", "c"):
        raw.create(CONFIG_MAPS, cm(name), "default")
    rec = Recorder()
    inf = make_informer(raw, rec)
    inf.start()
    assert inf.wait_synced(10)
    rec.take()
    inf.stop()
    # While the informer is away: more changes than the server's history window keeps.
    raw.delete(CONFIG_MAPS, "a", "default")
    raw.patch(CONFIG_MAPS, "b", {"data": {"v": "2"}}, "default")
    for name in ("d", "e", "f", "g"):
        raw.create(CONFIG_MAPS, cm(name), "default")
    inf.start()
    try:
        wait_for(lambda: inf.lists == 2, 15, "a relist after 410 Gone")
        events = rec.take()
        assert sorted(events) == [("add", "default/d", "1"), ("add", "default/e", "1"),
                                  ("add", "default/f", "1"), ("add", "default/g", "1"),
                                  ("delete", "default/a", "1"), ("update", "default/b", "2")]
        assert rec.synced_calls == 1  # synced is announced once, not per relist
        raw.create(CONFIG_MAPS, cm("h"), "default")
        wait_for(lambda: rec.events, 10, "events after the relist")
        assert rec.take() == [("add", "default/h", "1")]
    finally:
        inf.stop()
        raw.api.close()


def test_stop_ends_an_idle_watch_promptly(raw: RawClient):
    inf = make_informer(raw, Recorder(), watch_timeout=300)
    inf.start()
    assert inf.wait_synced(10)
    wait_for(lambda: inf.watches == 1, 5, "the watch to open")
    start = time.monotonic()
    inf.stop(timeout=10)
    assert inf._thread is not None and not inf._thread.is_alive()
    assert time.monotonic() - start < 3


def test_failing_list_is_retried_with_backoff_and_never_synced(raw: RawClient):
    attempts: list[float] = []

    class FailingClient(RawClient):
        def list(self, *a: Any, **kw: Any) -> dict:
            attempts.append(time.monotonic())
            raise ApiException(status=503, reason="unavailable")

    inf = Informer(FailingClient(raw.api), CONFIG_MAPS, backoff=Backoff(0.05, 0.4))
    inf.start()
    try:
        wait_for(lambda: len(attempts) >= 5, 10, "several list attempts")
        assert not inf.synced.is_set()
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        assert gaps[-1] > gaps[0]  # backing off
    finally:
        inf.stop()


def test_backoff_doubles_up_to_the_maximum_and_resets():
    b = Backoff(1.0, 4.0)
    delays = [b.next() for _ in range(4)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4
    assert 3.2 <= delays[2] <= 4.8 and 3.2 <= delays[3] <= 4.8
    b.reset()
    assert b.next() <= 1.2
