"""Builders of control-plane objects and a recording bridge for the policy unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from antrea_core.agent.openflow.flows import Flow
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    Direction,
    GroupMember,
    IPBlock,
    NamedPort,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyRule,
    PodReference,
    PolicyReference,
    PolicyType,
    Service,
)

NODE = "node-a"


def member(name: str, ip: str, node: str = NODE, ns: str = "default",
           ports: tuple[NamedPort, ...] = ()) -> GroupMember:
    return GroupMember(PodReference(ns, name), (ip,), node, ports)


def atg(name: str, *members: GroupMember) -> AppliedToGroup:
    return AppliedToGroup(name, frozenset(members))


def ag(name: str, *members: GroupMember) -> AddressGroup:
    return AddressGroup(name, frozenset(members))


def rule(direction: Direction = Direction.IN, groups: tuple[str, ...] = (),
         blocks: tuple[IPBlock, ...] = (), services: tuple[Service, ...] = (),
         priority: int = 0) -> NetworkPolicyRule:
    return NetworkPolicyRule(direction, NetworkPolicyPeer(groups, blocks), services, priority)


def policy(name: str, atgs: tuple[str, ...], *rules: NetworkPolicyRule,
           types: tuple[PolicyType, ...] = (PolicyType.INGRESS,)) -> NetworkPolicy:
    return NetworkPolicy(name, PolicyReference("K8sNetworkPolicy", "default", name, name),
                         tuple(rules), atgs, types)


@dataclass
class Pod:
    """A local pod as the agent's pod hooks announce it."""

    namespace: str
    name: str
    ofport: int
    ips: tuple[str, ...]


def flow_key(flow: Flow) -> tuple[str, int, tuple[tuple[str, Any], ...]]:
    return flow.table, flow.priority, tuple(sorted(flow.match.items()))


@dataclass
class RecordingBridge:
    """Stands in for `OFBridge` + its connection: keeps the installed flow set and every
    bundle in order (("add", flow) / ("delete", flow))."""

    flows: dict[Any, Flow] = field(default_factory=dict)
    bundles: list[list[tuple[str, Flow]]] = field(default_factory=list)
    replaced: int = 0
    fail: bool = False

    @property
    def conn(self) -> RecordingBridge:
        return self

    @property
    def encoder(self) -> RecordingBridge:
        return self

    def cookie(self, feature: str) -> int:
        return 0

    def compile(self, flows: list[Flow], feature: str) -> tuple[list[Any], list[str]]:
        return [("add", f) for f in flows], [str(f) for f in flows]

    def encode(self, flow: Flow, cookie: int, command: int) -> tuple[str, Flow]:
        return ("delete", flow)

    def bundle(self, msgs: list[tuple[str, Flow]], describe: Any = None) -> None:
        if self.fail:
            raise ConnectionError("vswitchd gone")
        self.bundles.append(list(msgs))
        for op, flow in msgs:
            if op == "add":
                self.flows[flow_key(flow)] = flow
            else:
                del self.flows[flow_key(flow)]  # a delete of a flow never added: a bug

    def replace_feature_flows(self, feature: str, flows: list[Flow]) -> None:
        if self.fail:
            raise ConnectionError("vswitchd gone")
        self.replaced += 1
        self.flows = {flow_key(f): f for f in flows}

    def table(self, name: str) -> list[Flow]:
        return [f for f in self.flows.values() if f.table == name]
