"""SerialDispatcher: one thread, arrival order, initial sync in one batch, then coalescing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
from waiting import wait_for

from antrea_core.k8s.dispatch import SerialDispatcher

pytestmark = pytest.mark.unit


class Target:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.current: list[str] | None = None
        self.threads: set[int] = set()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self.current = []
        yield
        self.batches.append(self.current)
        self.current = None

    def record(self, what: str):
        def fn(*objs: dict) -> None:
            self.threads.add(threading.get_ident())
            assert self.current is not None, "called outside a batch"
            self.current.append(f"{what}:{objs[-1]['metadata']['name']}")
        return fn

    def handler(self, d: SerialDispatcher, source: str):
        return d.handler(source, self.record(f"{source}+"), self.record(f"{source}~"),
                         self.record(f"{source}-"))


def obj(name: str) -> dict:
    return {"metadata": {"name": name}}


def test_initial_sync_of_all_sources_is_one_batch_then_events_follow():
    t = Target()
    d = SerialDispatcher(t.batch)
    pods, nps = t.handler(d, "pods"), t.handler(d, "nps")
    d.start()
    try:
        pods.on_add(obj("p1"))
        pods.on_add(obj("p2"))
        pods.on_synced()
        nps.on_add(obj("n1"))
        assert not d.synced.wait(0.3)  # nps has not finished its first list
        assert t.batches == []  # nothing published while the initial sync is open
        nps.on_synced()
        assert d.synced.wait(5)
        assert t.batches == [["pods+:p1", "pods+:p2", "nps+:n1"]]
        nps.on_update(obj("n1"), obj("n1"))
        pods.on_delete(obj("p1"))
        wait_for(lambda: sum(len(b) for b in t.batches) == 5, 5, "the later events")
        assert [c for b in t.batches[1:] for c in b] == ["nps~:n1", "pods-:p1"]
        assert len(t.threads) == 1
    finally:
        d.stop()


def test_a_failing_call_is_logged_and_later_calls_still_run():
    t = Target()
    d = SerialDispatcher(t.batch)
    d.start()  # no sources: synced at once
    assert d.synced.wait(5)

    def boom(_obj: dict) -> None:
        raise RuntimeError("bad object")

    d.submit(boom, obj("x"))
    d.submit(t.record("ok"), obj("y"))
    wait_for(lambda: any("ok:y" in b for b in t.batches), 5, "the call after the failure")
    d.stop()
    assert d._thread is not None and not d._thread.is_alive()


def test_a_failing_batch_publication_does_not_stop_the_dispatcher():
    published: list[list[str]] = []
    pending: list[str] = []
    failed = threading.Event()

    @contextlib.contextmanager
    def batch() -> Iterator[None]:
        yield
        if "bad" in pending:
            pending.clear()
            failed.set()
            raise RuntimeError("store rejected the batch")
        published.append(list(pending))
        pending.clear()

    d = SerialDispatcher(batch)
    d.start()
    d.submit(pending.append, "bad")
    assert failed.wait(5)
    d.submit(pending.append, "good")
    wait_for(lambda: published == [["good"]], 5, "the next batch published")
    d.stop()
