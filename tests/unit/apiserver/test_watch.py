"""Watch semantics: events, resume, expiry (410), bookmarks, initial events, slow watchers."""

from __future__ import annotations

import json
import threading
import time

import pytest
from apiserver_harness import client_for, raw_request
from kubernetes import watch
from kubernetes.client import CoreV1Api

pytestmark = pytest.mark.unit


def cm(name, **data):
    return {"metadata": {"name": name}, "data": data}


def collect(core: CoreV1Api, n: int, **kw):
    """Run a watch in a thread and return (events list, thread)."""
    events: list[dict] = []
    w = watch.Watch()

    def run():
        for ev in w.stream(core.list_namespaced_config_map, "default", **kw):
            events.append(ev)
            if len(events) >= n:
                w.stop()
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return events, t


def test_watch_sees_added_modified_deleted(core: CoreV1Api):
    start = core.list_namespaced_config_map("default").metadata.resource_version
    events, t = collect(core, 3, resource_version=start, timeout_seconds=10)
    time.sleep(0.2)
    core.create_namespaced_config_map("default", cm("a", k="1"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    core.delete_namespaced_config_map("a", "default")
    t.join(10)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"].data == {"k": "2"}
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3


def test_watch_from_resource_version_replays_history(core: CoreV1Api):
    first = core.create_namespaced_config_map("default", cm("a"))
    core.create_namespaced_config_map("default", cm("b"))
    core.create_namespaced_config_map("default", cm("c"))
    events, t = collect(core, 2, resource_version=first.metadata.resource_version,
                        timeout_seconds=5)
    t.join(10)
    assert [e["object"].metadata.name for e in events] == ["b", "c"]


def test_watch_without_resource_version_starts_with_current_state(core: CoreV1Api):
    core.create_namespaced_config_map("default", cm("a"))
    events, t = collect(core, 2, timeout_seconds=5)
    time.sleep(0.3)
    core.create_namespaced_config_map("default", cm("b"))
    t.join(10)
    assert [(e["type"], e["object"].metadata.name) for e in events] == \
        [("ADDED", "a"), ("ADDED", "b")]


def test_expired_resource_version_gets_410_error_event(server_factory):
    srv = server_factory(history_window=3)
    core = CoreV1Api(client_for(srv))
    old = core.create_namespaced_config_map("default", cm("first")).metadata.resource_version
    for i in range(5):
        core.create_namespaced_config_map("default", cm(f"x{i}"))
    r = raw_request(srv, "GET", f"/api/v1/namespaces/default/configmaps?watch=1"
                    f"&resourceVersion={old}&timeoutSeconds=2")
    assert r.status == 200
    lines = [json.loads(x) for x in r.body.splitlines() if x.strip()]
    assert lines[0]["type"] == "ERROR"
    assert lines[0]["object"]["code"] == 410 and lines[0]["object"]["reason"] == "Expired"
    # the official Watch surfaces it as an ApiException(410), which informers relist on
    from kubernetes.client.rest import ApiException
    with pytest.raises(ApiException) as e:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=old, timeout_seconds=2):
            pass
    assert e.value.status == 410


def test_per_resource_windows_keep_quiet_watchers_valid(server_factory):
    srv = server_factory(history_window=3)
    core = CoreV1Api(client_for(srv))
    rv = core.create_namespaced_secret("default", {"metadata": {"name": "s"}}
                                       ).metadata.resource_version
    for i in range(10):  # noisy configmaps do not expire the secrets' window
        core.create_namespaced_config_map("default", cm(f"x{i}"))
    core.create_namespaced_secret("default", {"metadata": {"name": "s2"}})
    r = raw_request(srv, "GET", f"/api/v1/namespaces/default/secrets?watch=1"
                    f"&resourceVersion={rv}&timeoutSeconds=1")
    events = [json.loads(x) for x in r.body.splitlines() if x.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "s2")]


def test_bookmarks_carry_only_resource_version(apiserver, core: CoreV1Api):
    rv = core.create_namespaced_config_map("default", cm("a")).metadata.resource_version
    r = raw_request(apiserver, "GET", f"/api/v1/namespaces/default/configmaps?watch=1"
                    f"&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1.3")
    events = [json.loads(x) for x in r.body.splitlines() if x.strip()]
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert events[0]["object"]["metadata"] == {"resourceVersion": rv}
    assert events[0]["object"]["kind"] == "ConfigMap"


def test_watch_single_object_by_field_selector(core: CoreV1Api, apiserver):
    core.create_namespaced_config_map("default", cm("a"))
    core.create_namespaced_config_map("default", cm("b"))
    r = raw_request(apiserver, "GET", "/api/v1/namespaces/default/configmaps?watch=1"
                    "&fieldSelector=metadata.name%3Db&timeoutSeconds=0.5")
    events = [json.loads(x) for x in r.body.splitlines() if x.strip()]
    assert [e["object"]["metadata"]["name"] for e in events] == ["b"]


def test_label_change_turns_modified_into_deleted_for_selector_watch(core: CoreV1Api):
    core.create_namespaced_config_map("default", {"metadata": {"name": "a",
                                                               "labels": {"app": "x"}}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    events, t = collect(core, 1, resource_version=rv, label_selector="app=x",
                        timeout_seconds=5)
    time.sleep(0.2)
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "y"}}})
    t.join(10)
    assert [e["type"] for e in events] == ["DELETED"]


def test_send_initial_events_ends_with_annotated_bookmark(apiserver, core: CoreV1Api):
    core.create_namespaced_config_map("default", cm("a"))
    r = raw_request(apiserver, "GET", "/api/v1/namespaces/default/configmaps?watch=1"
                    "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                    "&allowWatchBookmarks=true&timeoutSeconds=0.3")
    events = [json.loads(x) for x in r.body.splitlines() if x.strip()]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "a"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == \
        {"k8s.io/initial-events-end": "true"}


def test_slow_watcher_is_closed_with_410_instead_of_buffering(server_factory):
    srv = server_factory(watcher_max_pending=5)
    stream_started = threading.Event()
    result: dict = {}

    def slow_watch():
        import urllib3
        pool = urllib3.PoolManager(ca_certs=str(srv.server.pki_dir / "ca.crt"))
        r = pool.request("GET", srv.url + "/api/v1/namespaces/default/configmaps?watch=1"
                         "&resourceVersion=" + str(srv.call(lambda: srv.server.store.rv))
                         + "&timeoutSeconds=5",
                         headers={"Authorization": "Bearer lab-admin-token"},
                         preload_content=False)
        stream_started.set()
        time.sleep(1.0)  # not reading while events pile up on the server
        result["body"] = r.read()

    t = threading.Thread(target=slow_watch, daemon=True)
    t.start()
    stream_started.wait(5)
    time.sleep(0.2)
    # Produce events synchronously on the loop, so the watcher cannot drain in between.

    def burst():
        info = srv.server.catalog.lookup("", "v1", "configmaps")
        for i in range(50):
            srv.server.rest.create(info, "default", cm(f"c{i}"))
    srv.call(burst)
    t.join(10)
    events = [json.loads(x) for x in result["body"].splitlines() if x.strip()]
    assert events[-1]["type"] == "ERROR" and events[-1]["object"]["code"] == 410
    assert len(events) < 50
    watchers = srv.call(lambda: len(srv.server.store.resources[("", "configmaps")].watchers))
    assert watchers == 0


def test_abandoned_watch_is_unregistered(apiserver):
    import urllib3

    pool = urllib3.PoolManager(ca_certs=str(apiserver.server.pki_dir / "ca.crt"))
    r = pool.request("GET", apiserver.url + "/api/v1/namespaces/default/configmaps?watch=1",
                     headers={"Authorization": "Bearer lab-admin-token"},
                     preload_content=False)
    assert r.status == 200

    def count():
        rs = apiserver.server.store.resources.get(("", "configmaps"))
        return len(rs.watchers) if rs else 0

    assert apiserver.call(count) == 1
    r.close()
    pool.clear()
    deadline = time.monotonic() + 5
    while apiserver.call(count) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert apiserver.call(count) == 0


def test_shared_informer_tracks_objects(core: CoreV1Api):
    from kubernetes.informer import SharedInformer

    informer = SharedInformer(core.list_namespaced_config_map, namespace="default")
    seen: list[str] = []
    informer.add_event_handler("ADDED", lambda obj: seen.append(obj.metadata.name))
    core.create_namespaced_config_map("default", cm("before"))
    informer.start()
    try:
        deadline = time.monotonic() + 10
        while "before" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        core.create_namespaced_config_map("default", cm("after"))
        core.delete_namespaced_config_map("before", "default")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            keys = sorted(o.metadata.name for o in informer.cache.list())
            if keys == ["after"] and "after" in seen:
                break
            time.sleep(0.1)
        assert sorted(o.metadata.name for o in informer.cache.list()) == ["after"]
        assert {"before", "after"} <= set(seen)
    finally:
        informer.stop()


def test_too_old_continue_token_is_410(server_factory):
    from kubernetes.client.rest import ApiException

    srv = server_factory(history_window=3)
    core = CoreV1Api(client_for(srv))
    for i in range(3):
        core.create_namespaced_config_map("default", cm(f"a{i}"))
    page = core.list_namespaced_config_map("default", limit=1)
    token = page.metadata._continue
    assert token
    for i in range(5):  # push the page's resourceVersion out of the window
        core.create_namespaced_config_map("default", cm(f"b{i}"))
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default", limit=1, _continue=token)
    assert e.value.status == 410 and "continue" in e.value.body


def test_concurrent_writers_every_watcher_sees_every_event_in_order(apiserver, core):
    import urllib3

    rv = core.list_namespaced_config_map("default").metadata.resource_version
    total, results = 200, []

    def watcher():
        pool = urllib3.PoolManager(ca_certs=str(apiserver.server.pki_dir / "ca.crt"))
        r = pool.request("GET", apiserver.url + "/api/v1/namespaces/default/configmaps"
                         f"?watch=1&resourceVersion={rv}&timeoutSeconds=15",
                         headers={"Authorization": "Bearer lab-admin-token"},
                         preload_content=False)
        rvs, buf = [], b""
        for chunk in r.stream(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            rvs += [int(json.loads(x)["object"]["metadata"]["resourceVersion"])
                    for x in lines if x]
            if len(rvs) >= total:
                break
        r.close()
        results.append(rvs)

    watchers = [threading.Thread(target=watcher, daemon=True) for _ in range(3)]
    for t in watchers:
        t.start()
    time.sleep(0.3)

    def writer(k):
        c = CoreV1Api(client_for(apiserver))
        for n in range(k, total, 4):
            c.create_namespaced_config_map("default", cm(f"c{n}"))

    writers = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in writers:
        t.start()
    for t in writers + watchers:
        t.join(30)
    assert len(results) == 3
    for rvs in results:
        assert len(rvs) == total and rvs == sorted(rvs) and len(set(rvs)) == total
