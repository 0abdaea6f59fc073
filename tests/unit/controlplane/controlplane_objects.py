"""Sample control-plane objects for the watch/store/codec tests."""

from __future__ import annotations

from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    Direction,
    GroupMember,
    IPBlock,
    L4Protocol,
    NamedPort,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyRule,
    PodReference,
    PolicyReference,
    PolicyType,
    Service,
)


def member(i: int, node: str = "node-a", ports: bool = False) -> GroupMember:
    return GroupMember(PodReference("default", f"pod-{i}"),
                       (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",), node,
                       (NamedPort("http", 8080, L4Protocol.TCP),
                        NamedPort("dns", 53, L4Protocol.UDP)) if ports else ())


def members(ids: range | list[int], node: str = "node-a") -> frozenset[GroupMember]:
    return frozenset(member(i, node) for i in ids)


def address_group(name: str, ids: range | list[int]) -> AddressGroup:
    return AddressGroup(name, members(ids))


def applied_to_group(name: str, ids: range | list[int], node: str = "node-a"
                     ) -> AppliedToGroup:
    return AppliedToGroup(name, members(ids, node))


def policy(name: str, atg: str = "atg-1", ag: str = "ag-1", generation: int = 1
           ) -> NetworkPolicy:
    return NetworkPolicy(
        name=name,
        source=PolicyReference("K8sNetworkPolicy", "default", f"np-{name}", f"uid-{name}"),
        rules=(
            NetworkPolicyRule(Direction.IN, NetworkPolicyPeer(address_groups=(ag,)),
                              (Service(L4Protocol.TCP, 80), Service(L4Protocol.TCP, "http"),
                               Service(L4Protocol.UDP, 1000, 2000), Service(L4Protocol.SCTP)),
                              priority=0),
            NetworkPolicyRule(Direction.OUT, NetworkPolicyPeer(
                ip_blocks=(IPBlock("10.0.0.0/8", ("10.1.0.0/16", "10.2.0.0/16")),)),
                priority=1),
            NetworkPolicyRule(Direction.IN, NetworkPolicyPeer(), priority=1),
        ),
        applied_to_groups=(atg,),
        policy_types=(PolicyType.INGRESS, PolicyType.EGRESS),
        generation=generation)
