"""Conversions between the control-plane dataclasses (`controlplane.py`) and protobuf.

Groups can hold 10,000 members and the same member (one interned `GroupMember` per pod)
appears in many groups, so members are encoded to their wire bytes once and cached:
a group's `members` field is then the concatenation of cached member encodings
(protobuf's encoding of a repeated message field is exactly that). Decoding interns
members the same way, keyed by their bytes, so the agent also holds one object per pod.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from antrea_core.apis import controlplane_pb2 as pb
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    ControlPlaneObject,
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

KIND_TO_PB = {ObjectKind.APPLIED_TO_GROUP: pb.APPLIED_TO_GROUP,
              ObjectKind.ADDRESS_GROUP: pb.ADDRESS_GROUP,
              ObjectKind.NETWORK_POLICY: pb.NETWORK_POLICY}
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}
EVENT_TO_PB = {EventType.ADDED: pb.ADDED, EventType.MODIFIED: pb.MODIFIED,
               EventType.DELETED: pb.DELETED}
EVENT_FROM_PB = {v: k for k, v in EVENT_TO_PB.items()}

# Field numbers of the repeated GroupMember fields, for hand-framed encodings.
_GROUP_MEMBERS_FIELD = 2  # AppliedToGroup.members / AddressGroup.members
_PATCH_ADDED_FIELD = 3
_PATCH_REMOVED_FIELD = 4

# Bounds of the member caches: a pod churns out of the cache after this many newer pods.
MEMBER_CACHE_SIZE = 200_000


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2): tag, length, bytes."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


class _BoundedCache(dict):  # type: ignore[type-arg]
    """A dict that forgets everything when it grows past its bound (cheap, good enough:
    members are re-encoded on the next use)."""

    def __init__(self, bound: int) -> None:
        super().__init__()
        self.bound = bound

    def put(self, key: Any, value: Any) -> None:
        if len(self) >= self.bound:
            self.clear()
        self[key] = value


_member_bytes: _BoundedCache = _BoundedCache(MEMBER_CACHE_SIZE)
_member_objects: _BoundedCache = _BoundedCache(MEMBER_CACHE_SIZE)


# --- encoding ---------------------------------------------------------------------------

def member_to_pb(m: GroupMember) -> pb.GroupMember:
    return pb.GroupMember(
        pod=pb.PodReference(namespace=m.pod.namespace, name=m.pod.name),
        ips=m.ips, node=m.node,
        ports=[pb.NamedPort(name=p.name, port=p.port, protocol=p.protocol) for p in m.ports])


def member_bytes(m: GroupMember) -> bytes:
    """Length-prefixed wire encoding of one member (cached: members are shared between
    groups); a repeated member field is its tag byte before each of these."""
    # Keyed by identity (members are interned); the entry keeps the member alive so
    # its id cannot be reused while cached.
    entry = _member_bytes.get(id(m))
    if entry is not None and entry[0] is m:
        return entry[1]
    payload = member_to_pb(m).SerializeToString(deterministic=True)
    b = varint(len(payload)) + payload
    _member_bytes.put(id(m), (m, b))
    return b


def _members_field(field: int, members: Iterable[GroupMember]) -> bytes:
    encoded = [member_bytes(m) for m in members]
    if not encoded:
        return b""
    tag = varint(field << 3 | 2)
    return tag + tag.join(encoded)


def group_bytes(group: AppliedToGroup | AddressGroup) -> bytes:
    """Wire encoding of an AppliedToGroup / AddressGroup message."""
    return (length_delimited(1, group.name.encode())
            + _members_field(_GROUP_MEMBERS_FIELD, group.members))


def patch_bytes(patch: GroupPatch) -> bytes:
    """Wire encoding of a GroupPatch message."""
    head = pb.GroupPatch(kind=KIND_TO_PB[patch.kind], name=patch.name).SerializeToString()
    return (head + _members_field(_PATCH_ADDED_FIELD, patch.added)
            + _members_field(_PATCH_REMOVED_FIELD, patch.removed))


def service_to_pb(s: Service) -> pb.Service:
    out = pb.Service(protocol=s.protocol)
    if isinstance(s.port, str):
        out.port_name = s.port
    elif s.port is not None:
        out.port_number = s.port
    if s.end_port is not None:
        out.end_port = s.end_port
    return out


def policy_to_pb(p: NetworkPolicy) -> pb.NetworkPolicy:
    return pb.NetworkPolicy(
        name=p.name,
        source=pb.PolicyReference(type=p.source.type, namespace=p.source.namespace,
                                  name=p.source.name, uid=p.source.uid),
        rules=[pb.NetworkPolicyRule(
            direction=r.direction,
            peer=pb.NetworkPolicyPeer(
                address_groups=r.peer.address_groups,
                ip_blocks=[pb.IPBlock(cidr=b.cidr, excepts=b.except_)
                           for b in r.peer.ip_blocks]),
            services=[service_to_pb(s) for s in r.services],
            priority=r.priority) for r in p.rules],
        applied_to_groups=p.applied_to_groups,
        policy_types=[str(t) for t in p.policy_types],
        generation=p.generation)


def applied_to_group_to_pb(g: AppliedToGroup) -> pb.AppliedToGroup:
    return pb.AppliedToGroup.FromString(group_bytes(g))


def address_group_to_pb(g: AddressGroup) -> pb.AddressGroup:
    return pb.AddressGroup.FromString(group_bytes(g))


def object_to_pb(obj: ControlPlaneObject) -> Any:
    if isinstance(obj, NetworkPolicy):
        return policy_to_pb(obj)
    if isinstance(obj, AppliedToGroup):
        return applied_to_group_to_pb(obj)
    return address_group_to_pb(obj)


# WatchEvent fields: 1 type, 2 kind, 3 name, 4 network_policy, 5 applied_to_group,
# 6 address_group, 7 patch.
_EVENT_OBJECT_FIELD = {ObjectKind.NETWORK_POLICY: 4, ObjectKind.APPLIED_TO_GROUP: 5,
                       ObjectKind.ADDRESS_GROUP: 6}


def event_bytes(ev: WatchEvent) -> bytes:
    """Wire encoding of a WatchEvent message (groups hand-framed from cached members)."""
    head = pb.WatchEvent(type=EVENT_TO_PB[ev.type], kind=KIND_TO_PB[ev.kind],
                         name=ev.name).SerializeToString()
    if ev.patch is not None:
        return head + length_delimited(7, patch_bytes(ev.patch))
    obj = ev.obj
    if obj is None:
        return head
    if isinstance(obj, NetworkPolicy):
        body = policy_to_pb(obj).SerializeToString()
    else:
        body = group_bytes(obj)
    return head + length_delimited(_EVENT_OBJECT_FIELD[ev.kind], body)


def event_to_pb(ev: WatchEvent) -> pb.WatchEvent:
    return pb.WatchEvent.FromString(event_bytes(ev))


# --- decoding ---------------------------------------------------------------------------

_PROTOCOLS = {str(p): p for p in L4Protocol}


def member_from_pb(m: pb.GroupMember) -> GroupMember:
    ports = m.ports
    return GroupMember(
        pod=PodReference(m.pod.namespace, m.pod.name), ips=tuple(m.ips), node=m.node,
        ports=tuple(NamedPort(p.name, p.port, _PROTOCOLS[p.protocol]) for p in ports)
        if ports else ())


def _members_from_pb(members: Iterable[pb.GroupMember]) -> frozenset[GroupMember]:
    out = []
    cache = _member_objects
    for m in members:
        # Keyed by the member's bytes: equal members decode to one shared object.
        key = m.SerializeToString(deterministic=True)
        obj = cache.get(key)
        if obj is None:
            obj = member_from_pb(m)
            cache.put(key, obj)
        out.append(obj)
    return frozenset(out)


def applied_to_group_from_pb(g: pb.AppliedToGroup) -> AppliedToGroup:
    return AppliedToGroup(g.name, _members_from_pb(g.members))


def address_group_from_pb(g: pb.AddressGroup) -> AddressGroup:
    return AddressGroup(g.name, _members_from_pb(g.members))


def patch_from_pb(p: pb.GroupPatch) -> GroupPatch:
    return GroupPatch(KIND_FROM_PB[p.kind], p.name, _members_from_pb(p.added),
                      _members_from_pb(p.removed))


def service_from_pb(s: pb.Service) -> Service:
    which = s.WhichOneof("port")
    port: int | str | None = (s.port_number if which == "port_number"
                              else s.port_name if which == "port_name" else None)
    return Service(protocol=L4Protocol(s.protocol), port=port,
                   end_port=s.end_port if s.HasField("end_port") else None)


def policy_from_pb(p: pb.NetworkPolicy) -> NetworkPolicy:
    return NetworkPolicy(
        name=p.name,
        source=PolicyReference(p.source.type, p.source.namespace, p.source.name, p.source.uid),
        rules=tuple(NetworkPolicyRule(
            direction=Direction(r.direction),
            peer=NetworkPolicyPeer(
                address_groups=tuple(r.peer.address_groups),
                ip_blocks=tuple(IPBlock(b.cidr, tuple(b.excepts)) for b in r.peer.ip_blocks)),
            services=tuple(service_from_pb(s) for s in r.services),
            priority=r.priority) for r in p.rules),
        applied_to_groups=tuple(p.applied_to_groups),
        policy_types=tuple(PolicyType(t) for t in p.policy_types),
        generation=p.generation)


def event_from_pb(ev: pb.WatchEvent) -> WatchEvent:
    kind = KIND_FROM_PB[ev.kind]
    etype = EVENT_FROM_PB[ev.type]
    which = ev.WhichOneof("object")
    obj: ControlPlaneObject | None = None
    patch = None
    if which == "network_policy":
        obj = policy_from_pb(ev.network_policy)
    elif which == "applied_to_group":
        obj = applied_to_group_from_pb(ev.applied_to_group)
    elif which == "address_group":
        obj = address_group_from_pb(ev.address_group)
    elif which == "patch":
        patch = patch_from_pb(ev.patch)
    return WatchEvent(etype, kind, ev.name, obj, patch)
