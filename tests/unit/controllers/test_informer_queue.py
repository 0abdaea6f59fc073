"""Informer list/watch/relist behaviour against a scripted client, and WorkQueue rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from antrea_lab.controllers.informer import Informer, WorkQueue
from antrea_lab.controllers.kubeclient import PODS

pytestmark = pytest.mark.unit


def obj(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


class FakeStream:
    def __init__(self, events: list[dict] | Exception, hold: threading.Event) -> None:
        self.events, self.hold = events, hold
        self.closed = False

    def __iter__(self) -> Iterator[dict]:
        if isinstance(self.events, Exception):
            raise self.events
        yield from self.events
        self.hold.wait(5)  # an idle watch until stop() closes it

    def close(self) -> None:
        self.closed = True
        self.hold.set()


class ScriptedClient:
    """lists: successive list results; watches: successive watch scripts."""

    def __init__(self, lists: list[list[dict]], watches: list[list[dict] | Exception]) -> None:
        self.lists, self.watches = lists, watches
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self.hold = threading.Event()

    def list(self, res: object, **_: object) -> dict:
        items = self.lists[min(self.list_calls, len(self.lists) - 1)]
        self.list_calls += 1
        return {"metadata": {"resourceVersion": str(10 * self.list_calls)}, "items": items}

    def watch(self, res: object, rv: str, **_: object) -> FakeStream:
        self.watch_rvs.append(rv)
        script = self.watches.pop(0) if self.watches else []
        if not self.watches:
            return FakeStream(script, self.hold)
        return FakeStream(script, threading.Event() if isinstance(script, Exception)
                          else _set_event())


def _set_event() -> threading.Event:
    ev = threading.Event()
    ev.set()
    return ev


def wait_for(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_informer_resumes_from_last_version_and_relists_on_410() -> None:
    client = ScriptedClient(
        lists=[[obj("a", "1"), obj("b", "2")], [obj("a", "5"), obj("c", "6")]],
        watches=[
            [{"type": "MODIFIED", "object": obj("a", "3")}],   # then the stream ends
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                          "message": "too old"}}],
            [],
        ])
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    seen: list[tuple[str | None, str | None]] = []

    def handler(old: dict | None, new: dict | None) -> None:
        seen.append((old and old["metadata"]["resourceVersion"],
                     new and new["metadata"]["resourceVersion"]))

    inf.add_handler(handler)
    inf.start()
    try:
        wait_for(lambda: len(client.watch_rvs) == 3)
        wait_for(lambda: inf.get("ns/c") is not None)
        assert client.watch_rvs == ["10", "3", "20"]  # list rv, resumed rv, relist rv
        assert client.list_calls == 2
        assert sorted(inf.list_keys()) == ["ns/a", "ns/c"]
        assert (None, "1") in seen and (None, "2") in seen
        assert ("1", "3") in seen             # the watched update
        assert ("2", None) in seen            # b vanished across the relist
        assert ("3", "5") in seen and (None, "6") in seen
    finally:
        inf.stop()


def test_informer_backs_off_and_retries_on_connection_error() -> None:
    client = ScriptedClient(lists=[[obj("a", "1")]],
                            watches=[ConnectionResetError("boom"), []])
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    inf.start()
    try:
        wait_for(lambda: len(client.watch_rvs) == 2)
        assert client.watch_rvs == ["10", "10"]  # no relist for a plain network error
        assert client.list_calls == 1
    finally:
        inf.stop()


def test_informer_index_tracks_updates_and_deletes() -> None:
    client = ScriptedClient(lists=[[obj("a", "1")]], watches=[[
        {"type": "ADDED", "object": {"metadata": {"name": "b", "namespace": "ns2",
                                                  "resourceVersion": "2"}}},
        {"type": "DELETED", "object": obj("a", "3")},
    ]])
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    inf.add_index("ns", lambda o: [o["metadata"]["namespace"]])
    inf.start()
    try:
        wait_for(lambda: inf.get("ns/a") is None and inf.get("ns2/b") is not None)
        assert inf.by_index("ns", "ns") == []
        assert [o["metadata"]["name"] for o in inf.by_index("ns", "ns2")] == ["b"]
    finally:
        inf.stop()


def test_queue_deduplicates_and_defers_keys_in_flight() -> None:
    q = WorkQueue("t")
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    key = q.get(timeout=1)
    assert key == "a"
    q.add("a")  # re-added while processing: must not be handed to another worker
    assert q.get(timeout=1) == "b"
    assert q.get(timeout=0.05) is None
    q.done("a")
    assert q.get(timeout=1) == "a"


def test_queue_add_after_and_rate_limit_grow() -> None:
    q = WorkQueue("t", base_delay=0.05, max_delay=1)
    start = time.monotonic()
    q.add_after("x", 0.1)
    assert q.get(timeout=1) == "x"
    assert time.monotonic() - start >= 0.09
    q.done("x")
    assert q.add_rate_limited("y") == pytest.approx(0.05)
    assert q.add_rate_limited("y") == pytest.approx(0.1)
    q.forget("y")
    assert q.add_rate_limited("y") == pytest.approx(0.05)


def test_queue_shutdown_releases_waiters() -> None:
    q = WorkQueue("t")
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    time.sleep(0.05)
    q.shut_down()
    t.join(2)
    assert got == [None]

