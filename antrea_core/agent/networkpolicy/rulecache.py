"""The agent's copy of the policies that span this node, and what each rule means here.

The watch client feeds `RuleCache` (snapshot via `replace_all`, then events via `apply`)
and the agent feeds it local pod changes (`pod_changed`). The cache keeps policies and
groups as received and answers, per rule, its *units*: what one OVS conjunction must
match on this node (peer CIDRs, local applied-to pods, resolved ports). It never touches
OVS; it records which rules became dirty so that the realizer re-computes only those:

* a policy added/modified/deleted dirties its old and new rules;
* an AddressGroup (full or patch) dirties the rules whose peers name it;
* an AppliedToGroup dirties the rules of the policies applied to it, but only when its
  members *on this node* changed (a pod added on another node costs nothing here);
* a local pod appearing/disappearing (CNI ADD/DEL, restart) dirties the rules of the
  policies whose AppliedToGroups hold it.

Rules are identified by content: ``(policy name, rule)``. A modified policy whose rule
did not change keeps that rule's realization (and its conjunction id) untouched.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from antrea_core.agent.networkpolicy.ipblocks import peer_cidrs
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
    NetworkPolicy,
    NetworkPolicyRule,
    ObjectKind,
    PodReference,
    PolicyType,
    Service,
    WatchEvent,
)

log = logging.getLogger("antrea.agent.networkpolicy")

RuleKey = tuple[str, NetworkPolicyRule]  # (policy name, rule)


@dataclass(frozen=True, slots=True)
class LocalPod:
    """A pod attached to this node's bridge (from the interface store)."""

    namespace: str
    name: str
    ofport: int
    ips: tuple[str, ...]


LocalPodLookup = Callable[[str, str], "LocalPod | None"]


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A resolved service: `port` None = every port of the protocol; numbers only."""

    protocol: L4Protocol
    port: int | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class RuleUnit:
    """What one conjunction matches. `peers`/`ports` None = any; `key` is stable while
    the rule and its named-port resolution are, so it keys the conjunction id."""

    key: tuple[RuleKey, frozenset[PortSpec] | None]
    policy: str
    direction: Direction
    peers: frozenset[str] | None
    pods: frozenset[LocalPod]
    ports: frozenset[PortSpec] | None


def resolve_services(services: Iterable[Service],
                     member: GroupMember | None) -> frozenset[PortSpec]:
    """Services as numbers for one destination pod: a named port resolves through the
    pod's container ports (same name and protocol) or drops out; without a member
    (ipBlocks, unknown pods) named ports drop out."""
    out: set[PortSpec] = set()
    for svc in services:
        if isinstance(svc.port, str):
            if member is None:
                continue
            found = [p.port for p in member.ports
                     if p.name == svc.port and p.protocol == svc.protocol]
            out.update(PortSpec(svc.protocol, port) for port in found)
        else:
            end = svc.end_port if svc.port is not None else None
            out.add(PortSpec(svc.protocol, svc.port, end))
    return frozenset(out)


def _covers_every_address(blocks: Iterable[IPBlock]) -> bool:
    """The ipBlocks hold every IPv4 and IPv6 address (`ANY_ADDRESS`, no excepts)."""
    return set(ANY_ADDRESS) <= set(blocks)


def _has_named_ports(rule: NetworkPolicyRule) -> bool:
    return any(isinstance(s.port, str) for s in rule.services)


class RuleCache:
    """Policies and groups spanning this node, with dirty-rule tracking."""

    def __init__(self, node_name: str, local_pod: LocalPodLookup) -> None:
        self.node_name = node_name
        self._local_pod = local_pod
        self.policies: dict[str, NetworkPolicy] = {}
        self.applied_to: dict[str, set[GroupMember]] = {}
        self.address: dict[str, set[GroupMember]] = {}
        self._policies_by_atg: dict[str, set[str]] = defaultdict(set)
        self._rules_by_ag: dict[str, set[RuleKey]] = defaultdict(set)
        self._atgs_by_pod: dict[PodReference, set[str]] = defaultdict(set)
        self._dirty: set[RuleKey] = set()
        self._full = False
        self.synced = False  # a snapshot arrived at least once

    # -- PolicyEventHandler -------------------------------------------------------------

    def replace_all(self, policies: list[NetworkPolicy],
                    applied_to_groups: list[AppliedToGroup],
                    address_groups: list[AddressGroup]) -> None:
        self.policies.clear()
        self.applied_to.clear()
        self.address.clear()
        self._policies_by_atg.clear()
        self._rules_by_ag.clear()
        self._atgs_by_pod.clear()
        for atg in applied_to_groups:
            self._set_atg(atg.name, set(atg.members))
        for ag in address_groups:
            self.address[ag.name] = set(ag.members)
        for policy in policies:
            self._index_policy(policy)
        self._dirty.clear()
        self._full = True
        self.synced = True
        log.info("policy snapshot policies=%d appliedToGroups=%d addressGroups=%d",
                 len(policies), len(applied_to_groups), len(address_groups))

    def apply(self, event: WatchEvent) -> None:
        if event.kind is ObjectKind.NETWORK_POLICY:
            self._apply_policy(event)
        elif event.kind is ObjectKind.APPLIED_TO_GROUP:
            self._apply_atg(event)
        elif event.kind is ObjectKind.ADDRESS_GROUP:
            self._apply_ag(event)
        else:
            raise ValueError(f"unknown object kind in {event}")

    # -- local pods ---------------------------------------------------------------------

    def pod_changed(self, namespace: str, name: str) -> None:
        """A local pod was attached or detached: its policies' rules are dirty."""
        for atg in self._atgs_by_pod.get(PodReference(namespace, name), ()):
            for policy in self._policies_by_atg.get(atg, ()):
                self._dirty.update(self.rule_keys(policy))

    # -- dirty tracking -----------------------------------------------------------------

    def take_dirty(self) -> tuple[bool, set[RuleKey]]:
        """(full resync needed, dirty rule keys) since the last call; resets both."""
        full, dirty = self._full, self._dirty
        self._full, self._dirty = False, set()
        return full, dirty

    def mark_full(self) -> None:
        self._full = True

    def rule_keys(self, policy_name: str) -> list[RuleKey]:
        policy = self.policies.get(policy_name)
        return [] if policy is None else [(policy_name, r) for r in policy.rules]

    def all_rule_keys(self) -> list[RuleKey]:
        return [key for name in self.policies for key in self.rule_keys(name)]

    # -- what rules mean on this node ---------------------------------------------------

    def local_members(self, policy: NetworkPolicy) -> dict[LocalPod, GroupMember]:
        """The policy's applied-to pods attached to this node's bridge."""
        out: dict[LocalPod, GroupMember] = {}
        for atg in policy.applied_to_groups:
            for member in self.applied_to.get(atg, ()):
                if member.node not in ("", self.node_name):
                    continue
                pod = self._local_pod(member.pod.namespace, member.pod.name)
                if pod is not None:
                    out[pod] = member
        return out

    def units(self, key: RuleKey) -> list[RuleUnit]:
        """The conjunctions realizing one rule here (none if it no longer exists, has no
        local pod, or selects no peer)."""
        policy_name, rule = key
        policy = self.policies.get(policy_name)
        if policy is None or rule not in policy.rules:
            return []
        members = self.local_members(policy)
        if not members:
            return []
        pods = frozenset(members)
        any_peer = not rule.peer.address_groups and not rule.peer.ip_blocks
        peer_members = [m for ag in rule.peer.address_groups for m in self.address.get(ag, ())]
        named = _has_named_ports(rule)

        def unit(peers: frozenset[str] | None, unit_pods: frozenset[LocalPod],
                 ports: frozenset[PortSpec] | None) -> RuleUnit:
            return RuleUnit((key, ports if named else None), policy_name, rule.direction,
                            peers, unit_pods, ports)

        if not named:
            ports = resolve_services(rule.services, None) if rule.services else None
            peers = None if any_peer else peer_cidrs(
                (ip for m in peer_members for ip in m.ips), rule.peer.ip_blocks)
            return [unit(peers, pods, ports)] if peers is None or peers else []

        units: list[RuleUnit] = []
        if rule.direction is Direction.IN:
            # Named ports belong to the destination: the applied-to pod.
            peers = None if any_peer else peer_cidrs(
                (ip for m in peer_members for ip in m.ips), rule.peer.ip_blocks)
            if peers is not None and not peers:
                return []
            by_ports: dict[frozenset[PortSpec], set[LocalPod]] = defaultdict(set)
            for pod, member in members.items():
                by_ports[resolve_services(rule.services, member)].add(pod)
            for ports, group in by_ports.items():
                if ports:
                    units.append(unit(peers, frozenset(group), ports))
            return units
        # Egress: named ports belong to the destination, the peer pod. ipBlocks only get
        # the numeric services.
        by_ports_ips: dict[frozenset[PortSpec], set[str]] = defaultdict(set)
        numeric = resolve_services(rule.services, None)
        if any_peer or _covers_every_address(rule.peer.ip_blocks):
            # "To anyone" (the controller sends such a rule with an all-pods group and
            # ANY_ADDRESS): numeric ports stay open to every address, in or outside the
            # cluster; each peer pod adds the named ports it resolves beyond those. The
            # sets are disjoint from `numeric`, so unit keys cannot collide.
            named = [s for s in rule.services if isinstance(s.port, str)]
            for member in peer_members:
                extra = resolve_services(named, member) - numeric
                if extra:
                    by_ports_ips[extra].update(member.ips)
            units = [unit(None, pods, numeric)] if numeric else []
            units.extend(unit(peer_cidrs(ips, ()), pods, ports)
                         for ports, ips in by_ports_ips.items())
            return units
        for member in peer_members:
            by_ports_ips[resolve_services(rule.services, member)].update(member.ips)
        if rule.peer.ip_blocks and numeric:
            by_ports_ips.setdefault(numeric, set())
        for ports, ips in by_ports_ips.items():
            blocks = rule.peer.ip_blocks if ports == numeric else ()
            peers = peer_cidrs(ips, blocks)
            if ports and peers:
                units.append(unit(peers, pods, ports))
        return units

    def isolation(self) -> tuple[frozenset[LocalPod], frozenset[LocalPod]]:
        """(pods isolated for ingress, pods isolated for egress): a pod is isolated in a
        direction iff a policy applied to it has that policy type."""
        ingress: set[LocalPod] = set()
        egress: set[LocalPod] = set()
        for policy in self.policies.values():
            if not policy.policy_types:
                continue
            pods = self.local_members(policy)
            if PolicyType.INGRESS in policy.policy_types:
                ingress.update(pods)
            if PolicyType.EGRESS in policy.policy_types:
                egress.update(pods)
        return frozenset(ingress), frozenset(egress)

    # -- event handling -----------------------------------------------------------------

    def _index_policy(self, policy: NetworkPolicy) -> None:
        self.policies[policy.name] = policy
        for atg in policy.applied_to_groups:
            self._policies_by_atg[atg].add(policy.name)
        for rule in policy.rules:
            for ag in rule.peer.address_groups:
                self._rules_by_ag[ag].add((policy.name, rule))

    def _unindex_policy(self, name: str) -> NetworkPolicy | None:
        policy = self.policies.pop(name, None)
        if policy is None:
            return None
        for atg in policy.applied_to_groups:
            self._policies_by_atg[atg].discard(name)
        for rule in policy.rules:
            for ag in rule.peer.address_groups:
                self._rules_by_ag[ag].discard((name, rule))
        return policy

    def _apply_policy(self, event: WatchEvent) -> None:
        old = self._unindex_policy(event.name)
        if old is not None:
            self._dirty.update((old.name, r) for r in old.rules)
        if event.type is EventType.DELETED:
            return
        policy = event.obj
        if not isinstance(policy, NetworkPolicy):
            raise ValueError(f"{event.type} NetworkPolicy {event.name} carries no policy")
        self._index_policy(policy)
        self._dirty.update(self.rule_keys(policy.name))
        if old is not None and (old.applied_to_groups != policy.applied_to_groups
                                or old.policy_types != policy.policy_types):
            log.debug("policy scope changed policy=%s", policy.name)

    def _is_local(self, member: GroupMember) -> bool:
        return member.node in ("", self.node_name)

    def _set_atg(self, name: str, members: set[GroupMember]) -> None:
        for member in self.applied_to.get(name, ()):
            refs = self._atgs_by_pod.get(member.pod)
            if refs is not None:
                refs.discard(name)
                if not refs:
                    del self._atgs_by_pod[member.pod]
        self.applied_to[name] = members
        for member in members:
            if self._is_local(member):
                self._atgs_by_pod[member.pod].add(name)

    def _apply_atg(self, event: WatchEvent) -> None:
        old = self.applied_to.get(event.name, set())
        if event.type is EventType.DELETED:
            new: set[GroupMember] = set()
            self._set_atg(event.name, new)
            del self.applied_to[event.name]
        else:
            new = _group_members(event, old, AppliedToGroup)
            self._set_atg(event.name, new)
        changed = {m for m in old ^ new if self._is_local(m)}
        if changed:
            for policy in self._policies_by_atg.get(event.name, ()):
                self._dirty.update(self.rule_keys(policy))

    def _apply_ag(self, event: WatchEvent) -> None:
        old = self.address.get(event.name, set())
        if event.type is EventType.DELETED:
            self.address.pop(event.name, None)
            new: set[GroupMember] = set()
        else:
            new = _group_members(event, old, AddressGroup)
            self.address[event.name] = new
        if old != new:
            self._dirty.update(self._rules_by_ag.get(event.name, ()))


def _group_members(event: WatchEvent, old: set[GroupMember],
                   kind: type[AppliedToGroup] | type[AddressGroup]) -> set[GroupMember]:
    """The group's members after an ADDED/MODIFIED event (whole object or patch)."""
    if event.patch is not None:
        patch: GroupPatch = event.patch
        return (old - patch.removed) | patch.added
    if not isinstance(event.obj, kind):
        raise ValueError(f"{event.type} {event.kind} {event.name} carries neither the "
                         "group nor a patch")
    return set(event.obj.members)
