"""Control-plane objects and a fake controller query client for antctl's unit tests."""

from __future__ import annotations

from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    ControlPlaneObject,
    Direction,
    GroupMember,
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
    kind_of,
)

WEB = GroupMember(PodReference("demo", "web-a"), ("10.244.1.2",), "node1",
                  (NamedPort("http", 80, L4Protocol.TCP),))
WEB_B = GroupMember(PodReference("demo", "web-b"), ("10.244.2.2",), "node2")
CLIENT = GroupMember(PodReference("demo", "client"), ("10.244.1.3",), "node1")

ATG = AppliedToGroup("atg-web", frozenset({WEB, WEB_B}))
AG = AddressGroup("ag-client", frozenset({CLIENT}))
POLICY = NetworkPolicy(
    name="0b6c5d2e-uid-allow-http",
    source=PolicyReference("K8sNetworkPolicy", "demo", "allow-http", "0b6c5d2e-uid"),
    rules=(
        NetworkPolicyRule(Direction.IN, NetworkPolicyPeer(address_groups=("ag-client",)),
                          (Service(L4Protocol.TCP, 80), Service(L4Protocol.UDP, 5000, 5010))),
        NetworkPolicyRule(Direction.OUT, NetworkPolicyPeer(
            ip_blocks=(IPBlock("10.0.0.0/8", ("10.1.0.0/16",)),)), priority=0),
    ),
    applied_to_groups=("atg-web",),
    policy_types=(PolicyType.INGRESS, PolicyType.EGRESS),
    generation=3,
)
OTHER_POLICY = NetworkPolicy(
    name="9f-uid-deny-all", source=PolicyReference("K8sNetworkPolicy", "prod", "deny-all",
                                                   "9f-uid"),
    rules=(), applied_to_groups=("a1", "a2", "a3", "a4", "a5"),
    policy_types=(PolicyType.INGRESS,))

SPANS = {
    ATG.name: frozenset({"node1", "node2"}),
    AG.name: frozenset({"node1", "node2"}),
    POLICY.name: frozenset({"node1", "node2"}),
    OTHER_POLICY.name: frozenset({"node1", "node2", "node3", "node4"}),
}


class FakeQuery:
    """Answers like ControlPlaneQueryClient.list: [] for an unknown name."""

    def __init__(self, objects: list[ControlPlaneObject] | None = None,
                 error: Exception | None = None) -> None:
        self.objects = objects if objects is not None else [POLICY, OTHER_POLICY, ATG, AG]
        self.error = error
        self.calls: list[tuple[ObjectKind, str | None]] = []

    def list(self, kind: ObjectKind, name: str | None = None
             ) -> list[tuple[ControlPlaneObject, frozenset[str]]]:
        self.calls.append((kind, name))
        if self.error is not None:
            raise self.error
        return [(o, SPANS[o.name]) for o in self.objects
                if kind_of(o) is kind and (name is None or o.name == name)]
