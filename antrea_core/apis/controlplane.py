"""The control plane's NetworkPolicy model: what the controller computes and agents enforce.

The controller turns Kubernetes NetworkPolicies into three kinds of objects, as Antrea
does: an `AppliedToGroup` (the pods a policy applies to), an `AddressGroup` (the pods whose
IPs a rule's peers select) and an internal `NetworkPolicy` whose rules name groups instead
of carrying selectors. Groups are shared by every policy whose selector (and namespace
scope) is the same, so a pod label change is computed once per distinct selector.

Each object has a span — the nodes that need it — which the controller keeps next to the
object (not in it): an agent receives only objects whose span holds its node.

These are plain frozen dataclasses. They are the vocabulary shared by the controller's
computation (`antrea_core.controller`), the watch server and its protobuf encoding
(`antrea_core/apis/controlplane.proto`), and the agent's rule cache and flow realization
(`antrea_core.agent.networkpolicy`). Members are interned by the controller (one
`GroupMember` object per pod) so a pod in many groups costs one object.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class ObjectKind(enum.StrEnum):
    APPLIED_TO_GROUP = "AppliedToGroup"
    ADDRESS_GROUP = "AddressGroup"
    NETWORK_POLICY = "NetworkPolicy"


class EventType(enum.StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


class Direction(enum.StrEnum):
    IN = "In"
    OUT = "Out"


class L4Protocol(enum.StrEnum):
    """L4 protocols a rule may name (Kubernetes' spelling)."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@dataclass(frozen=True, slots=True)
class PodReference:
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class NamedPort:
    """A container port with a name, for resolving rules that name ports ("http")."""

    name: str
    port: int
    protocol: L4Protocol = L4Protocol.TCP


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A pod in a group: its IPs, the node it runs on and its named container ports."""

    pod: PodReference
    ips: tuple[str, ...]
    node: str = ""
    ports: tuple[NamedPort, ...] = ()


@dataclass(frozen=True, slots=True)
class AppliedToGroup:
    name: str
    members: frozenset[GroupMember]


@dataclass(frozen=True, slots=True)
class AddressGroup:
    name: str
    members: frozenset[GroupMember]


@dataclass(frozen=True, slots=True)
class GroupPatch:
    """Incremental change of a group's membership (sent instead of the whole group)."""

    kind: ObjectKind  # APPLIED_TO_GROUP or ADDRESS_GROUP
    name: str
    added: frozenset[GroupMember]
    removed: frozenset[GroupMember]


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: str
    except_: tuple[str, ...] = ()


# Every IPv4 and IPv6 address: the ipBlocks of an egress rule "to anyone" that also names
# ports (the controller adds an all-pods AddressGroup so named ports can resolve).
ANY_ADDRESS: tuple[IPBlock, ...] = (IPBlock("0.0.0.0/0"), IPBlock("::/0"))


@dataclass(frozen=True, slots=True)
class NetworkPolicyPeer:
    """Who a rule allows: members of address groups and/or addresses in ipBlocks.
    Both empty on a rule means "any peer" (a Kubernetes rule with no from/to)."""

    address_groups: tuple[str, ...] = ()
    ip_blocks: tuple[IPBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    """A port a rule allows. `port` None = every port of `protocol`; a str is a named port
    resolved per pod (the destination pod: applied-to members for ingress rules, peer
    members for egress rules); `end_port` makes [port, end_port] a range."""

    protocol: L4Protocol = L4Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkPolicyRule:
    """One rule. `services` empty = all ports and protocols. `priority` is the rule's
    index within its direction (Kubernetes rules are unordered; kept for stable ids)."""

    direction: Direction
    peer: NetworkPolicyPeer
    services: tuple[Service, ...] = ()
    priority: int = 0


class PolicyType(enum.StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


@dataclass(frozen=True, slots=True)
class PolicyReference:
    """The user-facing object an internal policy was computed from."""

    type: str  # "K8sNetworkPolicy"
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """An internal NetworkPolicy. `name` is the source policy's uid (unique, stable);
    `policy_types` says which directions it isolates its applied-to pods in, even when it
    has no rule in that direction (default deny)."""

    name: str
    source: PolicyReference
    rules: tuple[NetworkPolicyRule, ...]
    applied_to_groups: tuple[str, ...]
    policy_types: tuple[PolicyType, ...]
    generation: int = 0


ControlPlaneObject = AppliedToGroup | AddressGroup | NetworkPolicy


def kind_of(obj: ControlPlaneObject) -> ObjectKind:
    if isinstance(obj, AppliedToGroup):
        return ObjectKind.APPLIED_TO_GROUP
    if isinstance(obj, AddressGroup):
        return ObjectKind.ADDRESS_GROUP
    return ObjectKind.NETWORK_POLICY


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event of an agent's watch. ADDED/MODIFIED carry `obj` (MODIFIED of a group may
    carry `patch` instead); DELETED carries only kind and name."""

    type: EventType
    kind: ObjectKind
    name: str
    obj: ControlPlaneObject | None = None
    patch: GroupPatch | None = None


class ControlPlaneStore(Protocol):
    """Where the controller's computation publishes objects with their spans. The watch
    server implements it: it diffs each change against what every watcher holds and sends
    ADDED / MODIFIED (group patches) / DELETED per node span."""

    def upsert(self, obj: ControlPlaneObject, span: frozenset[str]) -> None: ...

    def delete(self, kind: ObjectKind, name: str) -> None: ...


class PolicyEventHandler(Protocol):
    """The agent side of the watch: what the client feeds into the rule cache."""

    def replace_all(self, policies: list[NetworkPolicy],
                    applied_to_groups: list[AppliedToGroup],
                    address_groups: list[AddressGroup]) -> None:
        """A full snapshot (first connect, or a reconnect that could not resume):
        afterwards the cache holds exactly these objects."""

    def apply(self, event: WatchEvent) -> None:
        """One incremental event, in order."""
