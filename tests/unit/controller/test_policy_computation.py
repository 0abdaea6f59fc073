"""NetworkPolicy computation: Kubernetes policy shapes → groups, rules and spans."""

from __future__ import annotations

import logging

import pytest
from netpol_objects import RecordingStore, labels, namespace, pod, policy

from antrea_core.apis.controlplane import (
    ANY_ADDRESS,
    Direction,
    IPBlock,
    L4Protocol,
    NamedPort,
    ObjectKind,
    PolicyType,
    Service,
)
from antrea_core.controller.networkpolicy import NetworkPolicyController

pytestmark = pytest.mark.unit

ATG, AG, NP = ObjectKind.APPLIED_TO_GROUP, ObjectKind.ADDRESS_GROUP, ObjectKind.NETWORK_POLICY


@pytest.fixture
def cluster(ctl: NetworkPolicyController) -> NetworkPolicyController:
    """Two namespaces; web and db pods in each; spread over three nodes."""
    with ctl.batch():
        ctl.add_namespace(namespace("prod", env="prod"))
        ctl.add_namespace(namespace("dev", env="dev"))
        ctl.add_pod(pod("prod", "web1", "10.0.1.1", "n1", {"app": "web"}))
        ctl.add_pod(pod("prod", "web2", "10.0.2.1", "n2", {"app": "web"}))
        ctl.add_pod(pod("prod", "db1", "10.0.3.1", "n3", {"app": "db"}))
        ctl.add_pod(pod("dev", "web1", "10.1.1.1", "n1", {"app": "web"}))
        ctl.add_pod(pod("dev", "db1", "10.1.3.1", "n3", {"app": "db"}))
    return ctl


def test_pod_selector_applies_in_the_policy_namespace_only(cluster: NetworkPolicyController,
                                                         store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "web", labels(app="web")))
    assert store.atg_pods("web") == {"prod/web1", "prod/web2"}
    np, span = store.policy("web")
    assert span == {"n1", "n2"}
    assert np.policy_types == (PolicyType.INGRESS,)
    assert np.rules == ()  # Ingress listed, no rule: default deny ingress


def test_ingress_pod_selector_peers_are_in_the_same_namespace(
        cluster: NetworkPolicyController, store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "db", labels(app="db"),
                                      ingress=[{"from": [{"podSelector": labels(app="web")}]}]))
    assert store.atg_pods("db") == {"prod/db1"}
    assert store.peer_pods("db") == {"prod/web1", "prod/web2"}
    np, span = store.policy("db")
    assert np.rules[0].direction is Direction.IN
    assert span == {"n3"}
    # The address group goes where the policy goes: to the node of the applied-to pod.
    assert store.ag(np.rules[0].peer.address_groups[0])[1] == {"n3"}


def test_namespace_selector_selects_all_pods_of_matching_namespaces(
        cluster: NetworkPolicyController, store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "db", labels(app="db"), ingress=[
        {"from": [{"namespaceSelector": labels(env="dev")}]}]))
    assert store.peer_pods("db") == {"dev/web1", "dev/db1"}


def test_pod_and_namespace_selector_in_one_peer_are_anded(
        cluster: NetworkPolicyController, store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "db", labels(app="db"), ingress=[
        {"from": [{"namespaceSelector": {}, "podSelector": labels(app="web")}]}]))
    assert store.peer_pods("db") == {"prod/web1", "prod/web2", "dev/web1"}


def test_separate_peers_are_ored(cluster: NetworkPolicyController, store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "db", labels(app="db"), ingress=[
        {"from": [{"namespaceSelector": labels(env="dev")}, {"podSelector": labels(app="web")}]}]))
    np, _ = store.policy("db")
    assert len(np.rules[0].peer.address_groups) == 2
    assert store.peer_pods("db") == {"prod/web1", "prod/web2", "dev/web1", "dev/db1"}


def test_ip_block_with_except_needs_no_address_group(cluster: NetworkPolicyController,
                                                     store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "ext", labels(app="web"), egress=[
        {"to": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}]}]))
    np, _ = store.policy("ext")
    assert np.policy_types == (PolicyType.INGRESS, PolicyType.EGRESS)  # defaulted
    (rule,) = np.rules
    assert rule.direction is Direction.OUT
    assert rule.peer.address_groups == ()
    assert rule.peer.ip_blocks == (IPBlock("192.168.0.0/16", ("192.168.1.0/24",)),)
    assert store.of_kind(AG) == {}


def test_empty_from_allows_any_peer(cluster: NetworkPolicyController,
                                    store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "open", labels(app="web"),
                                      ingress=[{"ports": [{"port": 80}]}]))
    (rule,) = store.policy("open")[0].rules
    assert rule.peer.address_groups == () and rule.peer.ip_blocks == ()
    assert rule.services == (Service(L4Protocol.TCP, 80),)


def test_egress_named_port_to_anyone_gets_every_pod_as_peer(cluster: NetworkPolicyController,
                                                           store: RecordingStore) -> None:
    # The named port resolves on the destination pod, so every pod must be a peer; the
    # ipBlocks keep the numeric port open to any address, in or outside the cluster.
    cluster.add_network_policy(policy("prod", "eg", labels(app="web"), policy_types=["Egress"],
                                      egress=[{"ports": [{"port": "dns", "protocol": "UDP"},
                                                         {"port": 443}]}]))
    (rule,) = store.policy("eg")[0].rules
    assert rule.peer.ip_blocks == ANY_ADDRESS
    assert store.peer_pods("eg") == {"prod/web1", "prod/web2", "prod/db1", "dev/web1",
                                     "dev/db1"}
    ag_name = rule.peer.address_groups[0]
    assert store.ag(ag_name)[1] == {"n1", "n2"}  # the span of the web pods
    cluster.add_namespace(namespace("new"))  # a namespace and pod added later
    cluster.add_pod(pod("new", "x", "10.2.0.1", "n3"))
    assert "new/x" in store.peer_pods("eg")


def test_numeric_or_ingress_ports_to_anyone_stay_any_peer(cluster: NetworkPolicyController,
                                                         store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "p", labels(app="web"),
                                      policy_types=["Ingress", "Egress"],
                                      ingress=[{"ports": [{"port": "http"}]}],
                                      egress=[{"ports": [{"port": 443}]}]))
    for rule in store.policy("p")[0].rules:
        assert rule.peer.address_groups == () and rule.peer.ip_blocks == ()
    assert store.of_kind(AG) == {}


def test_default_deny_all_directions(cluster: NetworkPolicyController,
                                     store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "deny", None, policy_types=["Ingress", "Egress"]))
    np, span = store.policy("deny")
    assert np.rules == ()
    assert np.policy_types == (PolicyType.INGRESS, PolicyType.EGRESS)
    assert store.atg_pods("deny") == {"prod/web1", "prod/web2", "prod/db1"}
    assert span == {"n1", "n2", "n3"}


def test_egress_only_policy_ignores_ingress_rules(cluster: NetworkPolicyController,
                                                  store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "eg", None, policy_types=["Egress"],
                                      ingress=[{}], egress=[{"to": [{"podSelector": {}}]}]))
    np, _ = store.policy("eg")
    assert np.policy_types == (PolicyType.EGRESS,)
    assert [r.direction for r in np.rules] == [Direction.OUT]


def test_ports_protocols_named_ports_and_ranges(cluster: NetworkPolicyController,
                                                store: RecordingStore) -> None:
    cluster.add_network_policy(policy("prod", "ports", labels(app="db"), ingress=[{"ports": [
        {"port": 5432}, {"protocol": "UDP", "port": 53}, {"port": "metrics"},
        {"protocol": "SCTP"}, {"port": 8000, "endPort": 8100}]}]))
    (rule,) = store.policy("ports")[0].rules
    assert rule.services == (Service(L4Protocol.TCP, 5432), Service(L4Protocol.UDP, 53),
                             Service(L4Protocol.TCP, "metrics"), Service(L4Protocol.SCTP),
                             Service(L4Protocol.TCP, 8000, 8100))


def test_named_ports_are_carried_in_members(ctl: NetworkPolicyController,
                                            store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "srv", labels={"app": "srv"}, ports=[
        {"name": "http", "containerPort": 8080},
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
        {"containerPort": 9000}]))
    ctl.add_network_policy(policy("a", "p", labels(app="srv"),
                                  ingress=[{"ports": [{"port": "http"}]}]))
    (member,) = store.atg(store.policy("p")[0].applied_to_groups[0])[0].members
    assert member.ports == (NamedPort("http", 8080), NamedPort("dns", 53, L4Protocol.UDP))


def test_only_running_pods_with_ips_and_pod_network_are_members(
        ctl: NetworkPolicyController, store: RecordingStore) -> None:
    with ctl.batch():
        ctl.add_pod(pod("a", "running", labels={"app": "x"}))
        ctl.add_pod(pod("a", "pending", ip=None, node="", labels={"app": "x"}))
        ctl.add_pod(pod("a", "done", phase="Succeeded", labels={"app": "x"}))
        ctl.add_pod(pod("a", "failed", phase="Failed", labels={"app": "x"}))
        ctl.add_pod(pod("a", "host", host_network=True, labels={"app": "x"}))
        ctl.add_network_policy(policy("a", "p", labels(app="x"),
                                      ingress=[{"from": [{"podSelector": labels(app="x")}]}]))
    assert store.atg_pods("p") == {"a/running"}
    assert store.peer_pods("p") == {"a/running"}
    # The pending pod gets its IP: it joins; the running one terminates: it leaves.
    ctl.update_pod(pod("a", "pending", ip="10.0.0.9", node="n9", labels={"app": "x"}))
    ctl.update_pod(pod("a", "running", phase="Succeeded", labels={"app": "x"}))
    assert store.atg_pods("p") == {"a/pending"}
    assert store.policy("p")[1] == {"n9"}


def test_a_scheduled_pod_is_applied_to_before_it_has_an_ip_but_is_no_peer_yet(
        ctl: NetworkPolicyController, store: RecordingStore) -> None:
    # Its node must isolate it before its CNI ADD makes it reachable.
    with ctl.batch():
        ctl.add_pod(pod("a", "old", labels={"app": "x"}))
        ctl.add_pod(pod("a", "new", ip=None, node="n2", labels={"app": "x"}))
        ctl.add_network_policy(policy("a", "p", labels(app="x"),
                                      ingress=[{"from": [{"podSelector": labels(app="x")}]}]))
    assert store.atg_pods("p") == {"a/old", "a/new"}
    assert store.policy("p")[1] == {"node1", "n2"}
    assert store.peer_pods("p") == {"a/old"}
    (new,) = [m for m in store.atg(store.policy("p")[0].applied_to_groups[0])[0].members
              if m.pod.name == "new"]
    assert new.ips == () and new.node == "n2"
    # kubelet reports its IP: the member carries it and the pod becomes a peer.
    ctl.update_pod(pod("a", "new", ip="10.0.0.7", node="n2", labels={"app": "x"}))
    assert store.peer_pods("p") == {"a/old", "a/new"}
    (ag,) = store.policy("p")[0].rules[0].peer.address_groups
    assert "10.0.0.7" in {ip for m in store.ag(ag)[0].members for ip in m.ips}


def test_policy_selecting_nothing_is_published_with_empty_span(
        ctl: NetworkPolicyController, store: RecordingStore) -> None:
    ctl.add_network_policy(policy("a", "p", labels(app="none")))
    np, span = store.policy("p")
    assert span == frozenset()
    assert store.atg(np.applied_to_groups[0])[1] == frozenset()


def test_policy_types_default_to_ingress_without_egress_rules(
        ctl: NetworkPolicyController, store: RecordingStore) -> None:
    ctl.add_network_policy(policy("a", "p", None, ingress=[{}]))
    assert store.policy("p")[0].policy_types == (PolicyType.INGRESS,)


@pytest.mark.parametrize(("spec_patch", "field"), [
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}},
     "spec.podSelector.matchExpressions[0].operator"),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
     "spec.ingress[0].from[0].ipBlock.cidr"),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]"),
    ({"egress": [{"ports": [{"port": 70000}]}]}, "spec.egress[0].ports[0].port"),
    ({"egress": [{"ports": [{"port": 90, "endPort": 80}]}]}, "spec.egress[0].ports[0].endPort"),
    ({"ingress": [{"ports": [{"protocol": "ICMP"}]}]}, "spec.ingress[0].ports[0].protocol"),
    ({"ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "k", "operator": "In"}]}}]}]},
     "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values"),
    ({"policyTypes": ["Sideways"]}, "spec.policyTypes[0]"),
])
def test_malformed_policy_is_logged_with_its_field_and_not_published(
        ctl: NetworkPolicyController, store: RecordingStore, caplog: pytest.LogCaptureFixture,
        spec_patch: dict, field: str) -> None:
    bad = policy("a", "bad")
    bad["spec"].update(spec_patch)
    with caplog.at_level(logging.ERROR, logger="antrea.controller.networkpolicy"):
        ctl.add_network_policy(bad)
    assert store.objects == {}
    assert f"field={field}" in caplog.text and "a/bad" in caplog.text


def test_invalid_update_keeps_the_last_valid_policy(ctl: NetworkPolicyController,
                                                    store: RecordingStore) -> None:
    ctl.add_network_policy(policy("a", "p", labels(app="x")))
    before = dict(store.objects)
    bad = policy("a", "p", {"matchExpressions": [{"key": "a", "operator": "Nope"}]})
    ctl.update_network_policy(bad)
    assert store.objects == before


def test_malformed_pods_and_namespaces_are_logged_and_skipped(
        ctl: NetworkPolicyController, store: RecordingStore,
        caplog: pytest.LogCaptureFixture) -> None:
    ctl.add_network_policy(policy("a", "p", None))
    with caplog.at_level(logging.ERROR, logger="antrea.controller.networkpolicy"):
        ctl.add_pod({"metadata": {"namespace": "a"}})
        ctl.add_pod({"metadata": {"namespace": "a", "name": "x"}, "status": {"podIPs": "bad"}})
        ctl.add_namespace({"metadata": None})
        ctl.delete_pod({})
    assert caplog.text.count("ignoring malformed object") == 4
    ctl.add_pod(pod("a", "ok"))
    assert store.atg_pods("p") == {"a/ok"}


def test_nodes_are_tracked(ctl: NetworkPolicyController) -> None:
    ctl.add_node({"metadata": {"name": "n1"}})
    ctl.add_node({"metadata": {"name": "n2"}})
    ctl.delete_node({"metadata": {"name": "n1"}})
    assert ctl.stats()["nodes"] == 1
