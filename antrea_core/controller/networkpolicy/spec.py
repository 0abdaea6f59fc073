"""Parse and validate a networking.k8s.io/v1 NetworkPolicy dict (API JSON shape).

The API server validates policies before we see them; this is defence in depth, so a
malformed object becomes a `PolicyError` naming the field instead of a crash or a
half-computed policy. The result keeps selectors (not groups): turning them into groups is
the computation's job.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from antrea_core.apis.controlplane import Direction, IPBlock, L4Protocol, PolicyType, Service
from antrea_core.controller.grouping.selectors import (
    MATCH_ALL,
    LabelSelector,
    SelectorError,
    parse_selector,
)

_PROTOCOLS = {p.value: p for p in L4Protocol}
_TYPES = {t.value: t for t in PolicyType}
_INGRESS, _EGRESS = PolicyType.INGRESS, PolicyType.EGRESS
_IN, _OUT = Direction.IN, Direction.OUT
_TCP = L4Protocol.TCP
# Shared policy_types tuples (one per combination instead of one per policy).
_TYPE_TUPLES = {t: t for t in ((_INGRESS,), (_EGRESS,), (_INGRESS, _EGRESS), (_EGRESS, _INGRESS))}
# IANA service name, as Kubernetes validates named ports.
_PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class PolicyError(ValueError):
    """A NetworkPolicy Kubernetes would reject; `field` is the path of the bad field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


# A peer selecting pods: (pod selector, namespace selector or None = the policy's namespace).
PeerSelector = tuple[LabelSelector, LabelSelector | None]


# Plain (not frozen) slots dataclasses: they are short-lived, and frozen dataclasses
# initialise several times slower, which shows at 100k policies.
@dataclass(slots=True)
class RuleSpec:
    direction: Direction
    priority: int
    any_peer: bool  # no from/to: every source/destination
    peers: tuple[PeerSelector, ...]
    ip_blocks: tuple[IPBlock, ...]
    services: tuple[Service, ...]


@dataclass(slots=True)
class PolicySpec:
    namespace: str
    name: str
    uid: str
    generation: int
    pod_selector: LabelSelector
    policy_types: tuple[PolicyType, ...]
    rules: tuple[RuleSpec, ...]


def _ip_block(obj: Any, field: str) -> IPBlock:
    if not isinstance(obj, dict):
        raise PolicyError(field, "must be an object")
    cidr = obj.get("cidr")
    try:
        net = ipaddress.ip_network(cidr, strict=False)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PolicyError(f"{field}.cidr", f"invalid CIDR {cidr!r}") from None
    excepts = obj.get("except") or []
    if not isinstance(excepts, list):
        raise PolicyError(f"{field}.except", "must be a list")
    out = []
    for i, exc in enumerate(excepts):
        try:
            sub = ipaddress.ip_network(exc, strict=False)
        except (TypeError, ValueError):
            raise PolicyError(f"{field}.except[{i}]", f"invalid CIDR {exc!r}") from None
        if sub.version != net.version or not sub.subnet_of(net) or sub == net:  # type: ignore[arg-type]
            raise PolicyError(f"{field}.except[{i}]", f"{exc} is not a strict subset of {cidr}")
        out.append(str(sub))
    return IPBlock(str(net), tuple(out))


def _port_number(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise PolicyError(field, f"must be a port number 1-65535, got {value!r}")
    return value


def _service(obj: Any, field: str) -> Service:
    if not isinstance(obj, dict):
        raise PolicyError(field, "must be an object")
    proto_name = obj.get("protocol")
    protocol = _PROTOCOLS.get(proto_name) if proto_name else _TCP
    if protocol is None:
        raise PolicyError(f"{field}.protocol",
                          f"unsupported protocol {proto_name!r} (TCP, UDP or SCTP)")
    port = obj.get("port")
    end_port = obj.get("endPort")
    if port is None:
        if end_port is not None:
            raise PolicyError(f"{field}.endPort", "requires a numeric port")
        return Service(protocol)
    if isinstance(port, str):
        if port.isdigit():  # an IntOrString given as a numeric string
            port = int(port)
        elif not _PORT_NAME.match(port):
            raise PolicyError(f"{field}.port", f"invalid port name {port!r}")
        elif end_port is not None:
            raise PolicyError(f"{field}.endPort", "cannot be used with a named port")
        else:
            return Service(protocol, port)
    port = _port_number(port, f"{field}.port")
    if end_port is not None:
        end_port = _port_number(end_port, f"{field}.endPort")
        if end_port < port:
            raise PolicyError(f"{field}.endPort", f"{end_port} is less than port {port}")
    return Service(protocol, port, end_port)


def _rule(obj: Any, direction: Direction, index: int) -> RuleSpec:
    """One rule; PolicyError fields are relative to the rule (the caller prefixes them)."""
    if not isinstance(obj, dict):
        raise PolicyError("", "must be an object")
    peers_field = "from" if direction is _IN else "to"
    raw_peers = obj.get(peers_field) or ()
    if not isinstance(raw_peers, list | tuple):
        raise PolicyError(peers_field, "must be a list")
    peers: list[PeerSelector] = []
    blocks: list[IPBlock] = []
    for i, peer in enumerate(raw_peers):
        if not isinstance(peer, dict):
            raise PolicyError(f"{peers_field}[{i}]", "must be an object")
        pod_sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        block = peer.get("ipBlock")
        if block is not None:
            if pod_sel is not None or ns_sel is not None:
                raise PolicyError(f"{peers_field}[{i}]",
                                  "ipBlock cannot be combined with selectors")
            block = _ip_block(block, f"{peers_field}[{i}].ipBlock")
            if block not in blocks:
                blocks.append(block)
            continue
        if pod_sel is None and ns_sel is None:
            raise PolicyError(f"{peers_field}[{i}]",
                              "must specify podSelector, namespaceSelector or ipBlock")
        try:
            # namespaceSelector alone selects every pod of the matching namespaces.
            selected: PeerSelector = (
                parse_selector(pod_sel, "podSelector") if pod_sel is not None else MATCH_ALL,
                parse_selector(ns_sel, "namespaceSelector") if ns_sel is not None else None)
        except SelectorError as exc:
            raise PolicyError(f"{peers_field}[{i}].{exc.field}",
                              str(exc).split(": ", 1)[-1]) from None
        if selected not in peers:
            peers.append(selected)
    raw_ports = obj.get("ports")
    services: tuple[Service, ...] = ()
    if raw_ports:
        if not isinstance(raw_ports, list):
            raise PolicyError("ports", "must be a list")
        services = tuple(dict.fromkeys(_service(p, f"ports[{i}]")
                                       for i, p in enumerate(raw_ports)))
    return RuleSpec(direction, index, not raw_peers, tuple(peers), tuple(blocks), services)


def parse_network_policy(obj: Mapping[str, Any]) -> PolicySpec:
    """Validate and normalize one policy. Raises PolicyError naming the bad field."""
    try:
        return _parse(obj)
    except SelectorError as exc:
        raise PolicyError(exc.field, str(exc).split(": ", 1)[-1]) from None


def _parse(obj: Mapping[str, Any]) -> PolicySpec:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise PolicyError("metadata.name", "missing")
    uid = meta.get("uid")
    if not uid:
        raise PolicyError("metadata.uid", "missing")
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise PolicyError("spec", "must be an object")
    pod_selector = parse_selector(spec.get("podSelector"), "spec.podSelector")
    ingress = spec.get("ingress") or []
    egress = spec.get("egress") or []
    for where, value in (("spec.ingress", ingress), ("spec.egress", egress)):
        if not isinstance(value, list):
            raise PolicyError(where, "must be a list")
    raw_types = spec.get("policyTypes")
    if raw_types:
        if not isinstance(raw_types, list):
            raise PolicyError("spec.policyTypes", "must be a list")
        types: list[PolicyType] = []
        for i, t in enumerate(raw_types):
            ptype = _TYPES.get(t) if type(t) is str else None
            if ptype is None:
                raise PolicyError(f"spec.policyTypes[{i}]", f"unknown policy type {t!r}")
            if ptype not in types:
                types.append(ptype)
    else:
        # Kubernetes' defaulting: Ingress always, Egress iff the policy has egress rules.
        types = [_INGRESS, _EGRESS] if egress else [_INGRESS]
    rules: list[RuleSpec] = []
    # Rules of a direction the policy does not list in policyTypes have no effect.
    for raw, direction, ptype, where in ((ingress, _IN, _INGRESS, "spec.ingress"),
                                         (egress, _OUT, _EGRESS, "spec.egress")):
        if not raw or ptype not in types:
            continue
        for i, r in enumerate(raw):
            try:
                rules.append(_rule(r, direction, i))
            except PolicyError as exc:
                sub = f".{exc.field}" if exc.field else ""
                raise PolicyError(f"{where}[{i}]{sub}", str(exc).split(": ", 1)[-1]) from None
    policy_types = _TYPE_TUPLES.get(tuple(types)) or tuple(types)
    return PolicySpec(meta.get("namespace") or "default", meta["name"], str(uid),
                      int(meta.get("generation") or 0), pod_selector, policy_types, tuple(rules))
