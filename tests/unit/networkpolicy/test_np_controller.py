"""The rule cache and incremental realization: dirty tracking, default deny, pods."""

from __future__ import annotations

import pytest
from np_fakes import NODE, Pod, RecordingBridge, ag, atg, member, policy, rule

from antrea_core.agent.networkpolicy.controller import (
    ConjIDAllocator,
    NetworkPolicyController,
    PolicyReplayError,
)
from antrea_core.agent.networkpolicy.rulecache import RuleCache
from antrea_core.agent.openflow.connection import OFConnection
from antrea_core.apis.controlplane import (
    Direction,
    EventType,
    GroupPatch,
    L4Protocol,
    ObjectKind,
    PolicyType,
    Service,
    WatchEvent,
)

pytestmark = pytest.mark.unit

WEB0 = Pod("default", "web-0", 10, ("10.10.0.10",))
WEB1 = Pod("default", "web-1", 11, ("10.10.0.11",))
HTTP = (Service(L4Protocol.TCP, 80),)


def setup(*pods: Pod) -> tuple[NetworkPolicyController, RecordingBridge]:
    bridge = RecordingBridge()
    ctl = NetworkPolicyController(NODE, bridge, gateway_ips=("10.10.0.1",))
    for pod in pods:
        ctl.pod_added(pod)
    return ctl, bridge


def two_policies(ctl: NetworkPolicyController) -> None:
    ctl.replace_all(
        [policy("p1", ("web",), rule(groups=("a",), services=HTTP)),
         policy("p2", ("web",), rule(groups=("b",), services=HTTP, priority=1))],
        [atg("web", member("web-0", "10.10.0.10"))],
        [ag("a", member("a1", "10.20.0.1", node="node-b")),
         ag("b", member("b1", "10.20.0.2", node="node-b"))])


def patch(kind: ObjectKind, name: str, added=(), removed=()) -> WatchEvent:
    return WatchEvent(EventType.MODIFIED, kind, name,
                      patch=GroupPatch(kind, name, frozenset(added), frozenset(removed)))


def sources(bridge: RecordingBridge) -> set[str]:
    return {f.match["ipv4_src"] for f in bridge.table("IngressRule") if "ipv4_src" in f.match}


def test_no_flows_until_the_controller_sends_a_snapshot():
    _ctl, bridge = setup(WEB0, WEB1)
    assert bridge.flows == {} and bridge.replaced == 0


def test_snapshot_replaces_all_policy_flows_atomically():
    ctl, bridge = setup(WEB0)
    two_policies(ctl)
    assert bridge.replaced == 1 and bridge.bundles == []
    assert sources(bridge) == {"10.20.0.1", "10.20.0.2"}
    ctl.replace_all([], [], [])
    assert bridge.replaced == 2
    assert bridge.table("IngressRule") == [] and bridge.table("IngressDefaultRule") == []
    assert bridge.table("IngressSecurityClassifier")  # the static bypasses stay


def test_address_group_patch_rerealizes_only_the_rules_naming_it():
    ctl, bridge = setup(WEB0)
    two_policies(ctl)
    cache: RuleCache = ctl.cache
    cache.apply(patch(ObjectKind.ADDRESS_GROUP, "a", added=[member("a2", "10.20.0.3")]))
    full, dirty = cache.take_dirty()
    assert not full and {name for name, _ in dirty} == {"p1"}
    cache.mark_full()  # put back what we took, so the controller resyncs
    ctl.apply(patch(ObjectKind.ADDRESS_GROUP, "b", added=[member("b2", "10.20.0.4")]))
    assert sources(bridge) == {"10.20.0.1", "10.20.0.2", "10.20.0.3", "10.20.0.4"}


def test_group_patch_adds_and_removes_a_peer_with_one_flow_each():
    ctl, bridge = setup(WEB0)
    two_policies(ctl)
    ctl.apply(patch(ObjectKind.ADDRESS_GROUP, "a", added=[member("a2", "10.20.0.3")]))
    assert [(op, f.match.get("ipv4_src")) for op, f in bridge.bundles[-1]] == [
        ("add", "10.20.0.3")]
    ctl.apply(patch(ObjectKind.ADDRESS_GROUP, "a",
                    removed=[member("a1", "10.20.0.1", node="node-b")]))
    assert [(op, f.match.get("ipv4_src")) for op, f in bridge.bundles[-1]] == [
        ("delete", "10.20.0.1")]
    assert sources(bridge) == {"10.20.0.2", "10.20.0.3"}


def test_applied_to_patch_for_another_node_costs_nothing():
    ctl, bridge = setup(WEB0)
    two_policies(ctl)
    ctl.apply(patch(ObjectKind.APPLIED_TO_GROUP, "web",
                    added=[member("web-9", "10.10.1.9", node="node-b")]))
    assert bridge.bundles == []


def test_local_pod_added_later_joins_its_rules_and_is_isolated():
    ctl, bridge = setup(WEB0)
    ctl.replace_all([policy("p", ("web",), rule(groups=("a",), services=HTTP))],
                    [atg("web", member("web-0", "10.10.0.10"), member("web-1", "10.10.0.11"))],
                    [ag("a", member("a1", "10.20.0.1"))])
    assert [f.match["reg1"] for f in bridge.table("IngressDefaultRule")] == [10]
    ctl.pod_added(WEB1)  # CNI ADD of web-1
    ops = bridge.bundles[-1]
    assert ("add", {"reg1": 11}) in [(op, f.match) for op, f in ops if f.table == "IngressRule"]
    assert sorted(f.match["reg1"] for f in bridge.table("IngressDefaultRule")) == [10, 11]
    ctl.pod_removed(WEB1)  # CNI DEL
    assert [f.match["reg1"] for f in bridge.table("IngressDefaultRule")] == [10]
    assert {"reg1": 11} not in [f.match for f in bridge.table("IngressRule")]


def test_pod_isolated_only_in_its_policy_types():
    ctl, bridge = setup(WEB0, WEB1)
    ctl.replace_all(
        [policy("in", ("w0",), types=(PolicyType.INGRESS,)),
         policy("out", ("w1",), types=(PolicyType.EGRESS,)),
         policy("both", ("w1",), types=(PolicyType.INGRESS, PolicyType.EGRESS))],
        [atg("w0", member("web-0", "10.10.0.10")), atg("w1", member("web-1", "10.10.0.11"))],
        [])
    assert {p.name for p in ctl.isolated(Direction.IN)} == {"web-0", "web-1"}
    assert {p.name for p in ctl.isolated(Direction.OUT)} == {"web-1"}
    assert [f.match for f in bridge.table("EgressDefaultRule")] == [{"in_port": 11}]
    # Deleting "both" keeps web-1 isolated for egress ("out") but opens its ingress.
    ctl.apply(WatchEvent(EventType.DELETED, ObjectKind.NETWORK_POLICY, "both"))
    assert {p.name for p in ctl.isolated(Direction.IN)} == {"web-0"}
    assert [f.match for f in bridge.table("EgressDefaultRule")] == [{"in_port": 11}]


def test_rule_removal_deletes_its_flows_but_keeps_default_deny_in_the_same_bundle():
    ctl, bridge = setup(WEB0)
    p = policy("p", ("web",), rule(groups=("a",), services=HTTP))
    ctl.replace_all([p], [atg("web", member("web-0", "10.10.0.10"))],
                    [ag("a", member("a1", "10.20.0.1"))])
    emptied = policy("p", ("web",))  # same policy, its rule removed
    ctl.apply(WatchEvent(EventType.MODIFIED, ObjectKind.NETWORK_POLICY, "p", obj=emptied))
    assert bridge.table("IngressRule") == []
    assert [f.match for f in bridge.table("IngressDefaultRule")] == [{"reg1": 10}]
    assert {op for op, _ in bridge.bundles[-1]} == {"delete"}


def test_policy_update_installs_new_rule_before_deleting_the_old_in_one_bundle():
    ctl, bridge = setup(WEB0)
    ctl.replace_all([policy("p", ("web",), rule(groups=("a",), services=HTTP))],
                    [atg("web", member("web-0", "10.10.0.10"))],
                    [ag("a", member("a1", "10.20.0.1"))])
    new = policy("p", ("web",), rule(groups=("a",), services=(Service(L4Protocol.TCP, 81),)))
    ctl.apply(WatchEvent(EventType.MODIFIED, ObjectKind.NETWORK_POLICY, "p", obj=new))
    [bundle] = bridge.bundles
    ops = [op for op, _ in bundle]
    assert ops == sorted(ops)  # every add before any delete, one bundle
    ports = [f.match["tcp_dst"] for f in bridge.table("IngressRule") if "tcp_dst" in f.match]
    assert ports == [81]


def test_unchanged_rule_of_a_modified_policy_is_not_touched():
    ctl, bridge = setup(WEB0)
    r1 = rule(groups=("a",), services=HTTP)
    ctl.replace_all([policy("p", ("web",), r1)], [atg("web", member("web-0", "10.10.0.10"))],
                    [ag("a", member("a1", "10.20.0.1"))])
    r2 = rule(Direction.OUT, priority=1)
    ctl.apply(WatchEvent(EventType.MODIFIED, ObjectKind.NETWORK_POLICY, "p",
                         obj=policy("p", ("web",), r1, r2)))
    assert all(f.table == "EgressRule" for _, f in bridge.bundles[-1])


def test_failed_update_is_retried_as_a_full_resync():
    ctl, bridge = setup(WEB0)
    two_policies(ctl)
    bridge.fail = True
    ctl.apply(patch(ObjectKind.ADDRESS_GROUP, "a", added=[member("a2", "10.20.0.3")]))
    assert "10.20.0.3" not in sources(bridge)
    bridge.fail = False
    ctl.apply(patch(ObjectKind.ADDRESS_GROUP, "b", added=[member("b2", "10.20.0.4")]))
    assert bridge.replaced == 2
    assert sources(bridge) == {"10.20.0.1", "10.20.0.2", "10.20.0.3", "10.20.0.4"}


def test_replay_reinstalls_the_whole_set():
    ctl, bridge = setup(WEB0)
    two_policies(ctl)
    before = {k: str(f) for k, f in bridge.flows.items()}
    bridge.flows.clear()  # vswitchd restarted
    ctl.replay()
    assert {k: str(f) for k, f in bridge.flows.items()} == before


def test_replay_runs_before_the_pod_flows_replay():
    ctl, _ = setup(WEB0)
    two_policies(ctl)
    order: list[str] = []

    # The datapath registers its pod-flow replay first, at start-up.
    conn = OFConnection("/nonexistent.mgmt",
                        on_reconnect=lambda c: order.append("pods"))
    ctl.replay = lambda: order.append("policy")  # type: ignore[method-assign]
    detach = ctl.attach_replay(conn)
    conn.run_reconnect_listeners()
    assert order == ["policy", "pods"]
    detach()
    conn.run_reconnect_listeners()
    assert order == ["policy", "pods", "pods"]


def test_conjunction_ids_are_reused_only_after_a_quarantine():
    now = [0.0]
    ctl, _ = setup(WEB0)
    ctl.conj_ids = ConjIDAllocator(reuse_delay=30.0, clock=lambda: now[0])
    two_policies(ctl)
    used = set(ctl.conj_ids._ids.values())

    def replace_p1_by(name: str) -> int:
        ctl.apply(WatchEvent(EventType.DELETED, ObjectKind.NETWORK_POLICY,
                             "p1" if name == "p3" else "p3"))
        ctl.apply(WatchEvent(EventType.ADDED, ObjectKind.NETWORK_POLICY, name,
                             obj=policy(name, ("web",), rule(groups=("a",), priority=5))))
        return ctl.conj_ids.get(next(k for k in ctl._units[(name, ctl.cache.policies[
            name].rules[0])]))

    # Deleted and replaced at once: the new rule gets an id never used before.
    assert replace_p1_by("p3") not in used
    now[0] = 31.0
    # Half a minute later, freed ids come back (oldest first).
    assert replace_p1_by("p4") in used


def test_replay_installs_a_snapshot_whose_first_install_failed():
    ctl, bridge = setup(WEB0)
    bridge.fail = True
    two_policies(ctl)  # OVS went away while the snapshot was being installed
    assert bridge.flows == {}
    bridge.fail = False
    ctl.replay()  # the reconnect
    assert sources(bridge) == {"10.20.0.1", "10.20.0.2"}


def test_a_failed_replay_raises_so_pod_flows_are_held_back():
    ctl, bridge = setup(WEB0)
    two_policies(ctl)
    order: list[str] = []
    conn = OFConnection("/nonexistent.mgmt",
                        on_reconnect=lambda c: order.append("pods"))
    conn.replay_retry_seconds = 60  # the retry itself is the connection's business
    ctl.attach_replay(conn)
    bridge.fail = True
    with pytest.raises(PolicyReplayError):
        ctl.replay()
    conn.run_reconnect_listeners()
    assert order == []
    bridge.fail = False
    conn.run_reconnect_listeners()
    assert order == ["pods"] and sources(bridge) == {"10.20.0.1", "10.20.0.2"}


def test_replay_without_any_snapshot_installs_nothing():
    ctl, bridge = setup(WEB0)
    ctl.replay()
    assert bridge.flows == {} and bridge.replaced == 0
