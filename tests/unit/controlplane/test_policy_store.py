"""PolicyStore: per-node events from span transitions, patches, resume and snapshots."""

from __future__ import annotations

import threading

import pytest
from controlplane_objects import address_group, applied_to_group, member, policy

from antrea_core.apis.controlplane import EventType, ObjectKind, WatchEvent
from antrea_core.controller.store import PolicyStore, Snapshot

pytestmark = pytest.mark.unit
A, B = "node-a", "node-b"


def events(watcher, timeout: float = 0.0) -> list[WatchEvent]:
    out = watcher.next(timeout=timeout)
    assert not isinstance(out, Snapshot)
    return [ev for _, ev in out]


def started(store: PolicyStore, node: str, resume: str = ""):
    w = store.watch(node)
    first = w.start(resume)
    return w, first


def test_snapshot_holds_only_the_nodes_span():
    store = PolicyStore()
    store.upsert(policy("p1"), frozenset({A}))
    store.upsert(policy("p2"), frozenset({B}))
    store.upsert(address_group("ag-1", range(3)), frozenset({A, B}))
    _, snap = started(store, A)
    assert isinstance(snap, Snapshot)
    assert [p.name for p in snap.policies] == ["p1"]
    assert [g.name for g in snap.address_groups] == ["ag-1"]
    assert snap.applied_to_groups == []


def test_entering_leaving_and_changing_span_give_added_deleted_modified():
    store = PolicyStore()
    w, _ = started(store, A)
    p = policy("p1")
    store.upsert(p, frozenset({B}))
    assert events(w) == []
    store.upsert(p, frozenset({A, B}))
    assert events(w) == [WatchEvent(EventType.ADDED, ObjectKind.NETWORK_POLICY, "p1", p)]
    p2 = policy("p1", generation=2)
    store.upsert(p2, frozenset({A, B}))
    assert events(w) == [WatchEvent(EventType.MODIFIED, ObjectKind.NETWORK_POLICY, "p1", p2)]
    store.upsert(p2, frozenset({A, B}))  # no change, no event
    assert events(w) == []
    store.upsert(p2, frozenset({B}))
    assert events(w) == [WatchEvent(EventType.DELETED, ObjectKind.NETWORK_POLICY, "p1")]
    store.upsert(p2, frozenset({A}))
    store.delete(ObjectKind.NETWORK_POLICY, "p1")
    assert [e.type for e in events(w)] == [EventType.ADDED, EventType.DELETED]


def test_group_membership_change_is_one_patch_shared_by_nodes():
    store = PolicyStore()
    store.upsert(address_group("ag-1", range(10)), frozenset({A, B}))
    wa, _ = started(store, A)
    wb, _ = started(store, B)
    store.upsert(address_group("ag-1", range(1, 12)), frozenset({A, B}))
    [ea], [eb] = events(wa), events(wb)
    assert ea is eb  # computed once
    assert ea.type == EventType.MODIFIED and ea.obj is None
    assert ea.patch.added == frozenset({member(10), member(11)})
    assert ea.patch.removed == frozenset({member(0)})


def test_group_entering_span_is_sent_whole_not_as_patch():
    store = PolicyStore()
    store.upsert(applied_to_group("atg-1", range(3)), frozenset({B}))
    w, _ = started(store, A)
    g = applied_to_group("atg-1", range(4))
    store.upsert(g, frozenset({A, B}))
    assert events(w) == [WatchEvent(EventType.ADDED, ObjectKind.APPLIED_TO_GROUP, "atg-1", g)]


def test_resume_returns_only_missed_events_for_that_node():
    store = PolicyStore()
    store.upsert(policy("p1"), frozenset({A}))
    w, snap = started(store, A)
    version = snap.version
    w.close()
    store.upsert(policy("p2"), frozenset({A}))
    store.upsert(policy("p3"), frozenset({B}))
    store.upsert(address_group("ag-1", [1]), frozenset({A}))
    w2, first = started(store, A, version)
    assert first is None  # resumed
    assert [(e.type, e.name) for e in events(w2)] == [(EventType.ADDED, "p2"),
                                                        (EventType.ADDED, "ag-1")]


def test_resume_after_history_overflow_or_restart_gets_a_snapshot():
    store = PolicyStore(history_size=3)
    w, snap = started(store, A)
    w.close()
    for i in range(5):
        store.upsert(policy(f"p{i}"), frozenset({A}))
    _, first = started(store, A, snap.version)
    assert isinstance(first, Snapshot)
    assert len(first.policies) == 5
    # A version from another store (controller restart) never resumes.
    _, other = started(PolicyStore(), A, snap.version)
    assert isinstance(other, Snapshot)


def test_watcher_that_falls_behind_gets_a_new_snapshot():
    store = PolicyStore(history_size=2)
    w, _ = started(store, A)
    for i in range(4):
        store.upsert(policy(f"p{i}"), frozenset({A}))
    out = w.next(timeout=0)
    assert isinstance(out, Snapshot)
    assert {p.name for p in out.policies} == {"p0", "p1", "p2", "p3"}
    store.upsert(policy("p9"), frozenset({A}))
    assert [e.name for e in events(w)] == ["p9"]


def test_next_waits_for_an_event_from_another_thread():
    store = PolicyStore()
    w, _ = started(store, A)
    timer = threading.Timer(0.2, store.upsert, (policy("p1"), frozenset({A})))
    timer.start()
    assert [e.name for e in events(w, timeout=10)] == ["p1"]
    assert events(w, timeout=0.05) == []


def test_bookmark_is_a_resumable_position():
    store = PolicyStore()
    w, _ = started(store, A)
    store.upsert(policy("p1"), frozenset({B}))
    mark = w.bookmark()
    w.close()
    store.upsert(policy("p2"), frozenset({A}))
    w2, first = started(store, A, mark)
    assert first is None
    assert [e.name for e in events(w2)] == ["p2"]


def test_queries_filter_by_node_span():
    store = PolicyStore()
    store.upsert(policy("p1"), frozenset({A}))
    store.upsert(policy("p2"), frozenset({A, B}))
    assert [o.name for o, _ in store.list(ObjectKind.NETWORK_POLICY)] == ["p1", "p2"]
    assert [o.name for o, _ in store.list(ObjectKind.NETWORK_POLICY, node=B)] == ["p2"]
    assert store.list(ObjectKind.NETWORK_POLICY, node=B, name="p1") == []
    [(obj, span)] = store.list(ObjectKind.NETWORK_POLICY, name="p2")
    assert obj.name == "p2"
    assert span == {A, B}


def test_concurrent_writers_and_watchers_converge_to_the_final_state():
    store = PolicyStore(history_size=100_000)
    watchers = {n: started(store, n)[0] for n in (A, B)}
    held: dict[str, dict[str, frozenset]] = {A: {}, B: {}}

    def writer(offset: int) -> None:
        for i in range(300):
            ids = range(offset + i % 7, offset + i % 7 + 5)
            span = frozenset({A}) if i % 3 else frozenset({A, B})
            store.upsert(address_group(f"ag-{offset}", ids), span)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for node, w in watchers.items():
        while True:
            out = w.next(timeout=0)
            assert not isinstance(out, Snapshot)
            if not out:
                break
            for _, ev in out:
                if ev.type == EventType.DELETED:
                    del held[node][ev.name]
                elif ev.patch is not None:
                    cur = held[node][ev.name]
                    held[node][ev.name] = (cur - ev.patch.removed) | ev.patch.added
                else:
                    held[node][ev.name] = ev.obj.members
        expected = {o.name: o.members for o, _ in store.list(ObjectKind.ADDRESS_GROUP,
                                                              node=node)}
        assert held[node] == expected


def test_resume_after_idle_history_was_forgotten_gets_a_snapshot():
    store = PolicyStore(idle_view_ttl=0.0)
    w, snap = started(store, A)
    w.close()
    store.upsert(policy("p1"), frozenset({B}))  # expires A's idle history
    assert store.watched_nodes() == []
    store.upsert(policy("p2"), frozenset({A}))  # nobody watches
    _, first = started(store, A, snap.version)
    assert isinstance(first, Snapshot)
    assert [p.name for p in first.policies] == ["p2"]
