"""NetworkPolicy flows on a real userspace OVS: real packets between pod netns where it
is cheap, `ofproto/trace` for the rest (SCTP, ipBlocks, port ranges)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from np_node import NODE_NAME, PORT, PolicyNode
from waiting import wait_for

from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    Direction,
    EventType,
    GroupMember,
    GroupPatch,
    IPBlock,
    L4Protocol,
    NamedPort,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyRule,
    ObjectKind,
    PodReference,
    PolicyReference,
    PolicyType,
    Service,
    WatchEvent,
)

pytestmark = pytest.mark.integration

TCP_ECHO = (Service(L4Protocol.TCP, PORT),)


def member(node: PolicyNode, name: str, ports: tuple[NamedPort, ...] = ()) -> GroupMember:
    return GroupMember(PodReference("default", name), (node.pods[name].ip,), NODE_NAME, ports)


def np(name: str, *rules: NetworkPolicyRule, atg: str = "server",
       types: tuple[PolicyType, ...] = (PolicyType.INGRESS,)) -> NetworkPolicy:
    return NetworkPolicy(name, PolicyReference("K8sNetworkPolicy", "default", name, name),
                         rules, (atg,), types)


def ingress(groups: tuple[str, ...] = (), blocks: tuple[IPBlock, ...] = (),
            services: tuple[Service, ...] = TCP_ECHO) -> NetworkPolicyRule:
    return NetworkPolicyRule(Direction.IN, NetworkPolicyPeer(groups, blocks), services)


def apply(node: PolicyNode, policies: list[NetworkPolicy], groups: dict[str, list[str]],
          server_ports: tuple[NamedPort, ...] = ()) -> None:
    """Snapshot: AppliedToGroup "server" = the server pod, AddressGroups as given."""
    assert node.policy is not None
    node.policy.replace_all(
        policies,
        [AppliedToGroup("server", frozenset({member(node, "server", server_ports)})),
         AppliedToGroup("client", frozenset({member(node, "client")}))],
        [AddressGroup(g, frozenset(member(node, m) for m in ms)) for g, ms in groups.items()])


@pytest.fixture(scope="module")
def server_log(node: PolicyNode) -> Path:
    return node.serve(node.pods["server"])


@pytest.fixture(autouse=True)
def no_policies(node: PolicyNode):
    yield
    apply(node, [], {})


def tcp(node: PolicyNode, src: str, payload: str) -> str:
    return node.send(node.pods[src].netns, "tcp", node.pods["server"].ip, payload)


def udp(node: PolicyNode, src: str, payload: str) -> str:
    return node.send(node.pods[src].netns, "udp", node.pods["server"].ip, payload)


def trace_to_server(node: PolicyNode, proto: str, src_ip: str, dport: int,
                    ct: str = "trk,new", extra: str = "") -> str:
    """A packet from the gateway port (any source IP) to the server pod; `ct` is the
    conntrack state the trace assumes after each ct() (default: a new connection)."""
    assert node.cfg is not None
    server = node.pods["server"]
    return node.verdict(
        f"in_port={node.cfg.gateway_ofport},{proto},dl_src={node.cfg.gateway_mac},"
        f"dl_dst={server.mac},nw_src={src_ip},nw_dst={server.ip},nw_ttl=64,"
        f"{proto}_src=40000,{proto}_dst={dport}{extra}", "--ct-next", ct)


def test_pods_without_policies_are_open(node: PolicyNode, server_log: Path):
    apply(node, [], {})
    assert tcp(node, "other", "open") == "echo:open"
    assert udp(node, "client", "open-udp") == "echo:open-udp"


def test_isolated_pod_drops_new_ingress_and_allowed_peer_passes(node: PolicyNode,
                                                                 server_log: Path):
    apply(node, [np("allow-client", ingress(("clients",)))], {"clients": ["client"]})
    seen = len(server_log.read_text().splitlines())
    assert tcp(node, "client", "allowed") == "echo:allowed"
    assert tcp(node, "other", "denied").startswith("error")
    assert udp(node, "client", "wrong-proto").startswith("error")  # only TCP is allowed
    assert server_log.read_text().splitlines()[seen:] == [f"tcp {node.pods['client'].ip}"]
    # The drop happened in IngressDefaultRule (its flow for the server counted it).
    deny = [f for f in node.dump_flows("IngressDefaultRule") if "priority=200" in f]
    assert len(deny) == 1 and "n_packets=0," not in deny[0]


def test_isolated_pod_drops_new_egress_but_replies_pass(node: PolicyNode, server_log: Path):
    # The server may send nothing new (egress isolated, no egress rule) and accepts TCP
    # from the client: the replies of that connection still leave it.
    apply(node, [np("ingress", ingress(("clients",))),
                 np("no-egress", types=(PolicyType.EGRESS,))], {"clients": ["client"]})
    assert tcp(node, "client", "reply-passes") == "echo:reply-passes"
    server, client = node.pods["server"], node.pods["client"]
    assert node.send(server.netns, "udp", client.ip, "new-egress").startswith("error")
    egress_deny = [f for f in node.dump_flows("EgressDefaultRule") if "priority=200" in f]
    assert len(egress_deny) == 1 and f"in_port={server.ofport}" in egress_deny[0]


def test_kubelet_probe_from_the_node_passes_an_isolated_pod(node: PolicyNode,
                                                            server_log: Path):
    apply(node, [np("deny-all")], {})
    assert tcp(node, "client", "denied").startswith("error")
    probe = node.send(node.netns, "tcp", node.pods["server"].ip, "probe")
    assert probe == "echo:probe"
    # Another source coming in through the gateway is still evaluated, and so is a
    # Service connection from the gateway IP (NodePort traffic masqueraded by the host).
    assert trace_to_server(node, "tcp", "10.99.0.1", PORT) == "drop"
    assert trace_to_server(node, "tcp", node.gateway_ip, PORT) != "drop"
    assert trace_to_server(node, "tcp", node.gateway_ip, PORT, extra=",ct_mark=0x10") == "drop"


def test_ipblock_except(node: PolicyNode):
    apply(node, [np("blocks", ingress(blocks=(IPBlock("10.77.0.0/16", ("10.77.1.0/24",)),)))],
          {})
    assert trace_to_server(node, "tcp", "10.77.0.5", PORT) != "drop"
    assert trace_to_server(node, "tcp", "10.77.200.5", PORT) != "drop"
    assert trace_to_server(node, "tcp", "10.77.1.5", PORT) == "drop"
    assert trace_to_server(node, "tcp", "10.78.0.5", PORT) == "drop"


def test_end_port_range(node: PolicyNode):
    apply(node, [np("range", ingress(services=(Service(L4Protocol.TCP, 1000, 1999),)))], {})
    for port in (1000, 1500, 1999):
        # Allowed: committed to conntrack and output (a datapath port number).
        assert trace_to_server(node, "tcp", "10.99.0.1", port) != "drop", port
    for port in (999, 2000, 80):
        assert trace_to_server(node, "tcp", "10.99.0.1", port) == "drop", port
    assert trace_to_server(node, "udp", "10.99.0.1", 1500) == "drop"


def test_sctp_port(node: PolicyNode):
    apply(node, [np("sctp", ingress(services=(Service(L4Protocol.SCTP, 5000),)))], {})
    assert trace_to_server(node, "sctp", "10.99.0.1", 5000) != "drop"
    assert trace_to_server(node, "sctp", "10.99.0.1", 5001) == "drop"
    assert trace_to_server(node, "tcp", "10.99.0.1", 5000) == "drop"


def test_named_port_resolves_on_the_destination_pod(node: PolicyNode, server_log: Path):
    named = (Service(L4Protocol.TCP, "echo"),)
    apply(node, [np("named", ingress(("clients",), services=named))], {"clients": ["client"]},
          server_ports=(NamedPort("echo", PORT),))
    assert tcp(node, "client", "named") == "echo:named"
    # Resolved to a different number: the echo port is no longer allowed.
    apply(node, [np("named", ingress(("clients",), services=named))], {"clients": ["client"]},
          server_ports=(NamedPort("echo", PORT + 1),))
    assert tcp(node, "client", "named-moved").startswith("error")


def test_rule_removal_reisolates(node: PolicyNode, server_log: Path):
    apply(node, [np("p", ingress(("clients",)))], {"clients": ["client"]})
    assert tcp(node, "client", "before") == "echo:before"
    assert node.policy is not None
    node.policy.apply(WatchEvent(EventType.MODIFIED, ObjectKind.NETWORK_POLICY, "p",
                                 obj=np("p")))  # same policy, rule gone
    assert tcp(node, "client", "after").startswith("error")
    node.policy.apply(WatchEvent(EventType.DELETED, ObjectKind.NETWORK_POLICY, "p"))
    assert tcp(node, "client", "open-again") == "echo:open-again"


def test_group_patch_adds_a_peer(node: PolicyNode, server_log: Path):
    apply(node, [np("p", ingress(("clients",)))], {"clients": ["client"]})
    assert tcp(node, "other", "not-yet").startswith("error")
    assert node.policy is not None
    node.policy.apply(WatchEvent(
        EventType.MODIFIED, ObjectKind.ADDRESS_GROUP, "clients",
        patch=GroupPatch(ObjectKind.ADDRESS_GROUP, "clients",
                         frozenset({member(node, "other")}), frozenset())))
    assert tcp(node, "other", "now") == "echo:now"
    assert tcp(node, "client", "still") == "echo:still"


def test_conjunction_flows_as_ovs_reads_them(node: PolicyNode):
    apply(node, [np("p", ingress(("clients",), services=(Service(L4Protocol.TCP, 80),
                                                          Service(L4Protocol.UDP, 53))))],
          {"clients": ["client", "other"]})
    flows = node.dump_flows("IngressRule")
    # 2 peers + 1 pod + 2 ports + the conj_id flow.
    assert len([f for f in flows if "conjunction(" in f]) == 5
    assert len([f for f in flows if "conj_id=" in f]) == 1
    assert any("tp_dst=80" in f and "/3)" in f for f in flows)


def test_ovs_restart_replays_policy_flows(node: PolicyNode, server_log: Path):
    apply(node, [np("p", ingress(("clients",)))], {"clients": ["client"]})
    assert node.ovs is not None and node.conn is not None
    before = sorted(f.split(" actions=")[1] for f in node.dump_flows("IngressRule"))
    node.ovs.restart_vswitchd(kill=True)
    wait_for(lambda: node.dump_flows("IngressDefaultRule")
             and len(node.dump_flows("IngressRule")) == len(before), 30,
             "policy flows replayed after the vswitchd restart")
    wait_for(lambda: tcp(node, "client", "after-restart") == "echo:after-restart", 30,
             "allowed client reaching the server after the restart", every=1)
    assert tcp(node, "other", "denied-after-restart").startswith("error")


def test_unfinished_conjunction_falls_through_to_a_one_dimension_rule(node: PolicyNode):
    """The server's pod flow carries policy A's conjunction (priority 200) and policy B's
    plain allow (priority 190): a packet completing no conjunction must still meet B."""
    apply(node, [np("a", ingress(("clients",))), np("b", ingress(services=()))],
          {"clients": ["client"]})
    assert trace_to_server(node, "udp", "10.99.0.1", 9) != "drop"
    apply(node, [np("a", ingress(("clients",)))], {"clients": ["client"]})
    assert trace_to_server(node, "udp", "10.99.0.1", 9) == "drop"


def test_established_packets_skip_rules_except_service_requests(node: PolicyNode):
    apply(node, [np("deny-all")], {})
    assert trace_to_server(node, "tcp", "10.99.0.1", PORT) == "drop"
    assert trace_to_server(node, "tcp", "10.99.0.1", PORT, ct="trk,est") != "drop"
    assert trace_to_server(node, "tcp", "10.99.0.1", PORT, ct="trk,rel") != "drop"
    # A Service connection (ct_mark bit 4, committed by AntreaProxy before policy ran):
    # its requests are evaluated again, its replies are not.
    assert trace_to_server(node, "tcp", "10.99.0.1", PORT, ct="trk,est",
                           extra=",ct_mark=0x10") == "drop"
    assert trace_to_server(node, "tcp", "10.99.0.1", PORT, ct="trk,est,rpl",
                           extra=",ct_mark=0x10") != "drop"


SCTP_PROBE = """
import asyncio, sys
from antrea_lab.sctpinit import probe
async def main():
    for port in sys.argv[2:]:
        try:
            print(await probe(sys.argv[1], int(port), 1.5))
        except (OSError, TimeoutError) as exc:
            print(type(exc).__name__)
asyncio.run(main())
"""
SCTP_SERVE = """
import asyncio, sys
from antrea_lab.sctpinit import Responder
async def main():
    responder = Responder([5000, 5001], sys.argv[1])
    print("ready", flush=True)
    await responder.run()
asyncio.run(main())
"""


def _sctp_serve(node: PolicyNode, pod: str) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", node.pods[pod].netns, sys.executable,
                             "-c", SCTP_SERVE, pod], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _sctp_probe(node: PolicyNode, src: str, dst: str, *ports: int) -> list[str]:
    return subprocess.run(["ip", "netns", "exec", node.pods[src].netns, sys.executable, "-c",
                           SCTP_PROBE, node.pods[dst].ip, *map(str, ports)],
                          capture_output=True, text=True, timeout=60).stdout.split()


def test_sctp_policies_hold_per_association_not_per_address_pair(node: PolicyNode):
    """The userspace datapath tracks SCTP per address pair, so conntrack states say
    nothing about an association: after one allowed association, another port must
    still be refused, and the isolated pod's own association to the client (the
    reverse direction of the pair) must not pass as a reply (real packets; the kernel
    here has no SCTP: raw-socket set-up)."""
    procs = [_sctp_serve(node, "server"), _sctp_serve(node, "client")]
    try:
        apply(node, [np("sctp", ingress(services=(Service(L4Protocol.SCTP, 5000),)),
                        types=(PolicyType.INGRESS, PolicyType.EGRESS))], {})
        assert _sctp_probe(node, "client", "server", 5000, 5001, 5000) == [
            "server", "TimeoutError", "server"]
        # server is isolated for egress with no egress rule: its own association to the
        # client is refused, though the client already has one to it.
        assert _sctp_probe(node, "server", "client", 5000) == ["TimeoutError"]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def test_sctp_replies_of_an_allowed_association_pass_whoever_spoke_first(node: PolicyNode):
    """Conntrack's entry for the pair was opened by the server (then not isolated):
    the client's later association to it must still get its answers."""
    procs = [_sctp_serve(node, "server"), _sctp_serve(node, "client")]
    try:
        apply(node, [], {})
        assert _sctp_probe(node, "server", "client", 5000) == ["client"]
        apply(node, [np("iso", ingress(services=(Service(L4Protocol.SCTP, 5000),)),
                        atg="client", types=(PolicyType.INGRESS,))], {})
        # client is isolated for ingress: the server's INIT-ACKs are replies of the
        # client's own association, in the direction conntrack calls "original".
        assert _sctp_probe(node, "client", "server", 5000) == ["server"]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
