"""Incremental realization ends where a from-scratch realization of the final state ends.

A random stream of watch events (policies added, modified, deleted; groups as whole
objects, patches and deletions, in any order) and local pod changes is fed to one agent
controller; after every step the flows it *installed* (the recording bridge, built only
from its bundles) must equal its desired flows, and at the end they must mean the same
as a fresh controller's flows for the final state. Conjunction ids differ between the
two, so flows are compared with each id replaced by the clauses that use it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from np_fakes import NODE, Pod, RecordingBridge, flow_key, member, policy, rule
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.networkpolicy import flowcalc
from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.agent.openflow.flows import Flow
from antrea_core.apis.controlplane import (
    ANY_ADDRESS,
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
    ObjectKind,
    PolicyType,
    Service,
    WatchEvent,
)

pytestmark = pytest.mark.unit

NAMED = (NamedPort("http", 80), NamedPort("dns", 81, L4Protocol.UDP),
         NamedPort("alt", 81))
LOCAL = [Pod("default", f"l{i}", 10 + i, (f"10.10.0.{10 + i}",)) for i in range(4)]
MEMBERS = [
    *(member(p.name, p.ips[0], ports=tuple(NAMED[: i % 4])) for i, p in enumerate(LOCAL)),
    *(member(f"r{i}", f"10.20.0.{i}", node="node-b", ports=tuple(NAMED[i % 3:]))
      for i in range(4)),
]
SERVICES = (Service(L4Protocol.TCP, 80), Service(L4Protocol.UDP, 81),
            Service(L4Protocol.TCP, "http"), Service(L4Protocol.UDP, "dns"),
            Service(L4Protocol.TCP, "alt"), Service(L4Protocol.TCP, 80, 81),
            Service(L4Protocol.UDP))
BLOCKS = (IPBlock("10.20.0.0/24", ("10.20.0.1/32",)), IPBlock("10.10.0.0/16"))
ATGS = ("t1", "t2", "t3")
AGS = ("g1", "g2", "g3")
POLICIES = ("p1", "p2", "p3", "p4")


def random_rule(rng: random.Random, priority: int) -> Any:
    direction = rng.choice((Direction.IN, Direction.OUT))
    shape = rng.randrange(5)
    groups = tuple(rng.sample(AGS, rng.randint(1, 2))) if shape in (1, 3) else ()
    blocks: tuple[IPBlock, ...] = ()
    if shape in (2, 3):
        blocks = tuple(rng.sample(BLOCKS, rng.randint(1, 2)))
    elif shape == 4:
        blocks = ANY_ADDRESS  # what the controller sends for named ports "to anyone"
    services = tuple(rng.sample(SERVICES, rng.randint(0, 3)))
    return rule(direction, groups, blocks, services, priority)


def random_policy(rng: random.Random, name: str) -> NetworkPolicy:
    rules = [random_rule(rng, i) for i in range(rng.randint(0, 3))]
    types = rng.choice(((PolicyType.INGRESS,), (PolicyType.EGRESS,),
                        (PolicyType.INGRESS, PolicyType.EGRESS)))
    return policy(name, tuple(rng.sample(ATGS, rng.randint(1, 2))), *rules, types=types)


def random_members(rng: random.Random) -> frozenset[GroupMember]:
    return frozenset(rng.sample(MEMBERS, rng.randint(0, 4)))


class Cluster:
    """What the agent should hold, and the events that take it there."""

    def __init__(self) -> None:
        self.policies: dict[str, NetworkPolicy] = {}
        self.groups: dict[tuple[ObjectKind, str], frozenset[GroupMember]] = {}

    def snapshot(self) -> tuple[list[NetworkPolicy], list[AppliedToGroup],
                                list[AddressGroup]]:
        atgs = [AppliedToGroup(n, m) for (k, n), m in self.groups.items()
                if k is ObjectKind.APPLIED_TO_GROUP]
        ags = [AddressGroup(n, m) for (k, n), m in self.groups.items()
               if k is ObjectKind.ADDRESS_GROUP]
        return list(self.policies.values()), atgs, ags

    def random_event(self, rng: random.Random) -> WatchEvent:
        if rng.random() < 0.5:
            name = rng.choice(POLICIES)
            if name in self.policies and rng.random() < 0.4:
                del self.policies[name]
                return WatchEvent(EventType.DELETED, ObjectKind.NETWORK_POLICY, name)
            kind = EventType.MODIFIED if name in self.policies else EventType.ADDED
            self.policies[name] = random_policy(rng, name)
            return WatchEvent(kind, ObjectKind.NETWORK_POLICY, name, self.policies[name])
        kind = rng.choice((ObjectKind.APPLIED_TO_GROUP, ObjectKind.ADDRESS_GROUP))
        name = rng.choice(ATGS if kind is ObjectKind.APPLIED_TO_GROUP else AGS)
        old = self.groups.get((kind, name))
        if old is not None and rng.random() < 0.25:
            del self.groups[(kind, name)]
            return WatchEvent(EventType.DELETED, kind, name)
        new = random_members(rng)
        self.groups[(kind, name)] = new
        if old is not None and rng.random() < 0.6:
            return WatchEvent(EventType.MODIFIED, kind, name,
                              patch=GroupPatch(kind, name, new - old, old - new))
        obj = (AppliedToGroup(name, new) if kind is ObjectKind.APPLIED_TO_GROUP
               else AddressGroup(name, new))
        return WatchEvent(EventType.MODIFIED if old is not None else EventType.ADDED,
                          kind, name, obj)


def canonical(flows: list[Flow]) -> set[Any]:
    """Flows with conjunction ids replaced by what the conjunction is made of and the
    rule-id register loads by a marker (any allowing rule's id will do)."""
    clauses: dict[int, set[Any]] = {}
    for f in flows:
        for a in f.actions:
            if isinstance(a, ofpp.NXActionConjunction):
                clauses.setdefault(a.id, set()).add(
                    (f.table, f.priority, tuple(sorted(f.match.items())), a.clause, a.n_clauses))
    sig = {c: frozenset(s) for c, s in clauses.items()}
    out = set()
    for f in flows:
        match = tuple(sorted((k, sig.get(v, ("no clause", v)) if k == "conj_id" else v)
                             for k, v in f.match.items()))
        actions = frozenset(
            (sig[a.id], a.clause, a.n_clauses) if isinstance(a, ofpp.NXActionConjunction)
            else type(a).__name__ for a in f.actions)
        out.add((f.table, f.priority, match, actions, f.goto))
    return out


def installed_equals_desired(ctl: NetworkPolicyController, bridge: RecordingBridge) -> None:
    desired = {flow_key(f): str(f) for f in ctl.flows()}
    installed = {k: str(f) for k, f in bridge.flows.items()}
    stale = {k: installed[k] for k in installed.keys() - desired.keys()}
    missing = {k: desired[k] for k in desired.keys() - installed.keys()}
    assert not stale and not missing
    assert installed == desired


@pytest.mark.parametrize("seed", range(20))
def test_random_event_stream_matches_a_fresh_realization(seed: int) -> None:
    rng = random.Random(seed)
    bridge = RecordingBridge()
    ctl = NetworkPolicyController(NODE, bridge, gateway_ips=("10.10.0.1",))
    pods = {i: LOCAL[i] for i in rng.sample(range(len(LOCAL)), 2)}
    for pod in pods.values():
        ctl.pod_added(pod)
    cluster = Cluster()
    ctl.replace_all(*cluster.snapshot())
    for _ in range(120):
        if rng.random() < 0.15:
            i = rng.randrange(len(LOCAL))
            if i in pods and rng.random() < 0.3:
                # Re-announced on another port (recreated, or found again on restart).
                pods[i] = replace(pods[i], ofport=pods[i].ofport + 100)
                ctl.pod_added(pods[i])
            elif i in pods:
                ctl.pod_removed(pods.pop(i))
            else:
                pods[i] = LOCAL[i]
                ctl.pod_added(LOCAL[i])
        else:
            ctl.apply(cluster.random_event(rng))
        installed_equals_desired(ctl, bridge)
    fresh_bridge = RecordingBridge()
    fresh = NetworkPolicyController(NODE, fresh_bridge, gateway_ips=("10.10.0.1",))
    for pod in pods.values():
        fresh.pod_added(pod)
    fresh.replace_all(*cluster.snapshot())
    assert canonical(list(bridge.flows.values())) == canonical(
        list(fresh_bridge.flows.values()))
    # Everything deleted: only the static flows remain.
    for name in list(cluster.policies):
        ctl.apply(WatchEvent(EventType.DELETED, ObjectKind.NETWORK_POLICY, name))
    rule_tables = ("IngressRule", "EgressRule", "IngressDefaultRule", "EgressDefaultRule")
    left = {k for k in bridge.flows if k[0] in rule_tables}
    assert left == {k for k in map(flow_key, flowcalc.static_flows(("10.10.0.1",)))
                    if k[0] in rule_tables}
