"""The control-plane API end to end: TLS, TokenReview auth, span-filtered watch, resume."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest
from controlplane_env import NODE_A, NODE_B, TOKENS, RecordingHandler, expected_for

sys.path.insert(0, str(Path(__file__).parents[2] / "unit" / "controlplane"))
from controlplane_objects import address_group, applied_to_group, policy
from waiting import wait_for

from antrea_core.agent.controlplane.client import (
    ControllerWatch,
    ControlPlaneQueryClient,
    QueryError,
    secure_channel,
)
from antrea_core.apis import controlplane_pb2 as pb
from antrea_core.apis import controlplane_pb2_grpc as pb_grpc
from antrea_core.apis.controlplane import EventType, ObjectKind
from antrea_core.controller.server.service import ControlPlaneServer

pytestmark = pytest.mark.integration
SERVER_NAME = "antrea.kube-system.svc"
A, B, AB = frozenset({NODE_A}), frozenset({NODE_B}), frozenset({NODE_A, NODE_B})


def populate(store) -> None:
    store.upsert(address_group("ag-1", range(100)), AB)
    store.upsert(applied_to_group("atg-a", range(3), NODE_A), A)
    store.upsert(applied_to_group("atg-b", range(3), NODE_B), B)
    store.upsert(policy("p-a", atg="atg-a"), A)
    store.upsert(policy("p-b", atg="atg-b"), B)


def watch_for(controller, node: str, handler: RecordingHandler, **kw) -> ControllerWatch:
    w = ControllerWatch(controller.address, controller.tls.ca_pem, TOKENS[node], node,
                        handler, server_name=kw.pop("server_name", SERVER_NAME),
                        initial_backoff=0.2, max_backoff=1.0, **kw)
    w.start()
    return w


def raw_watch(controller, node: str, token: str | None) -> grpc.StatusCode:
    channel = secure_channel(controller.address, controller.tls.ca_pem, SERVER_NAME)
    try:
        metadata = [("authorization", f"Bearer {token}")] if token is not None else None
        stream = pb_grpc.ControlPlaneStub(channel).Watch(
            pb.WatchRequest(node_name=node), metadata=metadata, timeout=30)
        with pytest.raises(grpc.RpcError) as err:
            next(iter(stream))
        return err.value.code()
    finally:
        channel.close()


def test_agent_receives_exactly_its_span_then_patches(controller):
    populate(controller.store)
    handler = RecordingHandler()
    w = watch_for(controller, NODE_A, handler)
    try:
        assert w.wait_synced(30)
        assert handler.snapshot() == expected_for(controller.store, NODE_A)
        assert {name for _, name in handler.snapshot()} == {"ag-1", "atg-a", "p-a"}
        controller.store.upsert(address_group("ag-1", range(1, 101)), AB)
        controller.store.upsert(policy("p-b", atg="atg-b"), AB)
        controller.store.upsert(policy("p-a", atg="atg-a"), B)
        wait_for(lambda: handler.snapshot() == expected_for(controller.store, NODE_A), 30,
                 "node A's cache to follow the store")
        patch = next(e for e in handler.events if e.name == "ag-1")
        assert patch.type == EventType.MODIFIED and patch.obj is None
        assert {m.pod.name for m in patch.patch.added} == {"pod-100"}
        assert {m.pod.name for m in patch.patch.removed} == {"pod-0"}
        assert [(e.type, e.name) for e in handler.events[1:]] == [
            (EventType.ADDED, "p-b"), (EventType.DELETED, "p-a")]
        assert handler.replace_calls == 1
    finally:
        w.stop()


def test_resume_after_server_disconnect_does_not_resend_snapshot(controller):
    populate(controller.store)
    handler = RecordingHandler()
    w = watch_for(controller, NODE_A, handler)
    try:
        assert w.wait_synced(30)
        controller.server.stop(grace=0)
        wait_for(lambda: not w.connected, 30, "the client to notice the server is gone")
        # While the server is down the agent keeps what it had (never fails open).
        before = handler.snapshot()
        controller.store.upsert(address_group("ag-1", range(5, 100)), AB)
        controller.store.delete(ObjectKind.NETWORK_POLICY, "p-a")
        controller.store.upsert(policy("p-new", atg="atg-a"), A)
        assert handler.snapshot() == before
        controller.restart_server(bookmark_interval=1.0)
        wait_for(lambda: handler.snapshot() == expected_for(controller.store, NODE_A), 60,
                 "node A to converge after the server restarted")
        assert w.snapshots == 1 and handler.replace_calls == 1
        patch = next(e for e in handler.events if e.name == "ag-1")
        assert patch.patch is not None and len(patch.patch.removed) == 5
    finally:
        w.stop()


def test_watching_another_node_or_as_admin_is_permission_denied(controller):
    assert raw_watch(controller, NODE_B, TOKENS[NODE_A]) == grpc.StatusCode.PERMISSION_DENIED
    assert raw_watch(controller, NODE_A, TOKENS["admin"]) == grpc.StatusCode.PERMISSION_DENIED


def test_missing_or_bad_token_is_unauthenticated(controller):
    assert raw_watch(controller, NODE_A, None) == grpc.StatusCode.UNAUTHENTICATED
    assert raw_watch(controller, NODE_A, "not-a-token") == grpc.StatusCode.UNAUTHENTICATED
    with ControlPlaneQueryClient(controller.address, controller.tls.ca_pem, "nope",
                                 server_name=SERVER_NAME) as q, \
            pytest.raises(QueryError) as err:
        q.list(ObjectKind.NETWORK_POLICY)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_queries_show_admins_everything_and_nodes_their_span(controller):
    populate(controller.store)
    ca = controller.tls.ca_pem
    with ControlPlaneQueryClient(controller.address, ca, TOKENS["admin"],
                                 server_name=SERVER_NAME) as admin:
        pols = admin.list(ObjectKind.NETWORK_POLICY)
        assert [(p.name, span) for p, span in pols] == [("p-a", A), ("p-b", B)]
        assert pols[0][0] == policy("p-a", atg="atg-a")
        assert [p.name for p, _ in admin.list(ObjectKind.NETWORK_POLICY, node=NODE_B)] == [
            "p-b"]
        [(group, span)] = admin.list(ObjectKind.ADDRESS_GROUP, name="ag-1")
        assert group == address_group("ag-1", range(100)) and span == AB
        assert admin.list(ObjectKind.APPLIED_TO_GROUP, name="missing") == []
    with ControlPlaneQueryClient(controller.address, ca, TOKENS[NODE_A],
                                 server_name=SERVER_NAME) as node_a:
        assert [g.name for g, _ in node_a.list(ObjectKind.APPLIED_TO_GROUP)] == ["atg-a"]
        assert node_a.list(ObjectKind.NETWORK_POLICY, name="p-b") == []
        with pytest.raises(QueryError) as err:
            node_a.list(ObjectKind.NETWORK_POLICY, node=NODE_B)
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_certificate_name_is_checked(controller):
    with ControlPlaneQueryClient(controller.address, controller.tls.ca_pem, TOKENS["admin"],
                                 server_name="not-the-controller.example", timeout=10) as q, \
            pytest.raises(QueryError) as err:
        q.list(ObjectKind.NETWORK_POLICY)
    assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_client_started_before_server_converges_when_it_comes_up(controller):
    populate(controller.store)
    controller.server.stop(grace=0)
    handler = RecordingHandler()
    w = watch_for(controller, NODE_B, handler)
    try:
        assert not w.wait_synced(1.0)
        assert w.last_error is not None
        controller.restart_server(bookmark_interval=1.0)
        assert w.wait_synced(60)
        assert handler.snapshot() == expected_for(controller.store, NODE_B)
    finally:
        w.stop()


def test_a_controller_back_at_another_address_is_found_again(controller):
    """A rescheduled controller pod comes back elsewhere: the agent asks where it is
    before each reconnect (discovery reads the Service's endpoints again)."""
    populate(controller.store)
    where = {"now": (controller.address, controller.tls.ca_pem)}
    handler = RecordingHandler()
    w = watch_for(controller, NODE_A, handler, resolve=lambda: where["now"])
    try:
        assert w.wait_synced(30)
        controller.server.stop(grace=0)
        wait_for(lambda: not w.connected, 30, "the client to notice the server is gone")
        moved = ControlPlaneServer(controller.store, controller.authenticator,
                                   (controller.tls.cert_pem, controller.tls.key_pem),
                                   "127.0.0.1:0", bookmark_interval=1.0)
        moved.start()
        try:
            controller.store.upsert(policy("p-moved", atg="atg-a"), A)
            where["now"] = (f"127.0.0.1:{moved.port}", controller.tls.ca_pem)
            wait_for(lambda: handler.snapshot() == expected_for(controller.store, NODE_A), 60,
                     "node A to converge with the controller at its new address")
            assert w.address == f"127.0.0.1:{moved.port}"
        finally:
            w.stop()
            moved.stop()
    finally:
        w.stop()
