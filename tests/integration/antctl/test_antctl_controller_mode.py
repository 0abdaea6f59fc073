"""antctl's controller mode against a real ControlPlane gRPC server over TLS on 127.0.0.1
(the controller's PolicyStore and server, ControlPlaneQueryClient), discovery aside."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from antrea_core.agent.controlplane.client import ControlPlaneQueryClient
from antrea_core.antctl.controller_client import ControllerView
from antrea_core.antctl.errors import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, AntctlError
from antrea_core.antctl.main import GetOptions, run_get
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    Direction,
    GroupMember,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyRule,
    PodReference,
    PolicyReference,
    PolicyType,
    Service,
)
from antrea_core.controller.certificates import ServingCertificate, self_signed
from antrea_core.controller.server import ControlPlaneServer
from antrea_core.controller.server.auth import Identity
from antrea_core.controller.store import PolicyStore

pytestmark = pytest.mark.integration

ADMIN, NODE1 = "hE-admin-token", "hE-node1-token"
WEB = GroupMember(PodReference("demo", "web"), ("10.244.1.2",), "node1")
DB = GroupMember(PodReference("demo", "db"), ("10.244.2.2",), "node2")
CLIENT = GroupMember(PodReference("demo", "client"), ("10.244.1.3",), "node1")
ATG_WEB = AppliedToGroup("atg-web", frozenset({WEB}))
ATG_DB = AppliedToGroup("atg-db", frozenset({DB}))
AG = AddressGroup("ag-client", frozenset({CLIENT}))


def _policy(uid: str, name: str, atg: str) -> NetworkPolicy:
    return NetworkPolicy(
        name=uid, source=PolicyReference("K8sNetworkPolicy", "demo", name, uid),
        rules=(NetworkPolicyRule(Direction.IN, NetworkPolicyPeer(("ag-client",)),
                                 (Service(port=80),)),),
        applied_to_groups=(atg,), policy_types=(PolicyType.INGRESS,))


WEB_POLICY = _policy("uid-web", "allow-web", "atg-web")
DB_POLICY = _policy("uid-db", "allow-db", "atg-db")


class TokenTable:
    """The controller's Authenticator with fixed tokens (TokenReview is C1's to test)."""

    def authenticate(self, token: str) -> Identity | None:
        return {ADMIN: Identity("admin", ("system:masters",)),
                NODE1: Identity("system:node:node1", ("system:nodes",), "node1")}.get(token)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ServingCertificate:
    return self_signed(tmp_path_factory.mktemp("hE-certs"), ["127.0.0.1"])


@pytest.fixture
def controller(tls: ServingCertificate) -> Iterator[ControlPlaneServer]:
    store = PolicyStore()
    for obj, span in ((ATG_WEB, {"node1"}), (ATG_DB, {"node2"}), (AG, {"node1", "node2"}),
                      (WEB_POLICY, {"node1"}), (DB_POLICY, {"node2"})):
        store.upsert(obj, frozenset(span))
    server = ControlPlaneServer(store, TokenTable(), (tls.cert_pem, tls.key_pem),
                                "127.0.0.1:0")
    server.start()
    yield server
    server.stop()
    store.close()


def get(server_port: int, ca: bytes, token: str, resource: str, **opts: object) -> str:
    address = f"127.0.0.1:{server_port}"

    def connect() -> ControllerView:
        return ControllerView(ControlPlaneQueryClient(address, ca, token, timeout=20), address)

    def no_agent() -> None:
        raise AssertionError("controller resources never ask the agent")

    return run_get(resource, GetOptions(**opts), agent=no_agent,  # type: ignore[arg-type]
                   controller=connect)


def test_admin_lists_every_policy_with_its_span(controller, tls):
    out = get(controller.port, tls.ca_pem, ADMIN, "netpol")
    header, *rows = out.splitlines()
    assert header.split()[0] == "NAME"
    assert [(r.split()[0], r.split()[-1]) for r in rows] == [("uid-db", "node2"),
                                                              ("uid-web", "node1")]


def test_policy_by_source_name_and_the_groups_it_names(controller, tls):
    policy = json.loads(get(controller.port, tls.ca_pem, ADMIN, "netpol",
                            name="demo/allow-web", output="json"))
    assert policy["metadata"]["name"] == "uid-web"
    assert policy["rules"][0]["from"] == {"addressGroups": ["ag-client"]}
    group = json.loads(get(controller.port, tls.ca_pem, ADMIN, "atg",
                           name=policy["appliedToGroups"][0], output="json"))
    assert group["groupMembers"] == [{"pod": {"namespace": "demo", "name": "web"},
                                      "ips": ["10.244.1.2"], "node": "node1"}]
    ag = get(controller.port, tls.ca_pem, ADMIN, "ag")
    assert ag.splitlines()[1].split() == ["ag-client", "1", "2", "node1,node2"]


def test_policies_applied_to_a_pod(controller, tls):
    out = json.loads(get(controller.port, tls.ca_pem, ADMIN, "netpol", pod="db",
                         namespace="demo", output="json"))
    assert [p["metadata"]["name"] for p in out] == ["uid-db"]


def test_a_node_identity_sees_only_its_span(controller, tls):
    out = json.loads(get(controller.port, tls.ca_pem, NODE1, "netpol", output="json"))
    assert [p["metadata"]["name"] for p in out] == ["uid-web"]


def test_unknown_name_is_not_found(controller, tls):
    with pytest.raises(AntctlError) as info:
        get(controller.port, tls.ca_pem, ADMIN, "addressgroup", name="ag-nope")
    assert info.value.exit_code == EXIT_NOT_FOUND


def test_bad_token_is_refused_with_a_hint(controller, tls):
    with pytest.raises(AntctlError) as info:
        get(controller.port, tls.ca_pem, "wrong", "netpol")
    assert info.value.exit_code == 1
    assert "UNAUTHENTICATED" in info.value.message and "kubeconfig" in info.value.message


def test_controller_not_listening_is_unavailable(tls):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AntctlError) as info:
        get(port, tls.ca_pem, ADMIN, "netpol")
    assert info.value.exit_code == EXIT_UNAVAILABLE
    assert f"127.0.0.1:{port}" in info.value.message
