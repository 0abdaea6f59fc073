"""A second opinion on the hand-written expectations, for the unit tests only.

A small, literal reading of the NetworkPolicy API (selectors, ipBlock/except, ports with
named ports and endPort, policyTypes) over the static model. The lab cases never use it:
their expected matrices are written by hand, as upstream's are. It runs every lab case
against a fake cluster so that a wrong hand-written matrix is caught without a lab."""

from __future__ import annotations

import ipaddress
from typing import Any

from netpol import model

Labels = dict[str, str]


def selector_matches(selector: dict[str, Any] | None, labels: Labels) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        present = key in labels
        ok = {"In": present and labels.get(key) in values,
              "NotIn": not present or labels.get(key) not in values,
              "Exists": present, "DoesNotExist": not present}[op]
        if not ok:
            return False
    return True


class Oracle:
    def __init__(self, ns_labels: dict[str, Labels], pod_labels: dict[str, Labels],
                 ips: dict[str, str], policies: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.ns_labels = ns_labels
        self.pod_labels = pod_labels
        self.ips = ips
        self.policies = policies

    def connected(self, src: str, dst: str, proto: str, port: int) -> bool:
        return (self._allowed(src, dst, proto, port, "Egress", owner=src)
                and self._allowed(src, dst, proto, port, "Ingress", owner=dst))

    def _types(self, spec: dict[str, Any]) -> list[str]:
        if spec.get("policyTypes"):
            return spec["policyTypes"]
        return ["Ingress"] + (["Egress"] if spec.get("egress") else [])

    def _allowed(self, src: str, dst: str, proto: str, port: int, direction: str,
                 owner: str) -> bool:
        owner_ns = owner.split("/")[0]
        selecting = [(ns, spec) for (ns, _), spec in self.policies.items()
                     if ns == owner_ns and direction in self._types(spec)
                     and selector_matches(spec.get("podSelector") or {},
                                          self.pod_labels[owner])]
        if not selecting:
            return True  # not isolated in this direction
        peer = src if direction == "Ingress" else dst
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for ns, spec in selecting:
            for rule in spec.get(key) or []:
                peers = rule.get(peers_key) or []
                if peers and not any(self._peer(p, peer, ns) for p in peers):
                    continue
                ports = rule.get("ports") or []
                if not ports or any(self._port(p, dst, proto, port) for p in ports):
                    return True
        return False

    def _peer(self, peer: dict[str, Any], pod: str, policy_ns: str) -> bool:
        if "ipBlock" in peer:
            ip = ipaddress.ip_address(self.ips[pod])
            block = peer["ipBlock"]
            return (ip in ipaddress.ip_network(block["cidr"])
                    and not any(ip in ipaddress.ip_network(e) for e in block.get("except") or []))
        pod_ns = pod.split("/")[0]
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"] or {}, self.ns_labels[pod_ns]):
                return False
        elif pod_ns != policy_ns:
            return False
        return selector_matches(peer.get("podSelector") or {}, self.pod_labels[pod])

    def _port(self, spec: dict[str, Any], dst: str, proto: str, port: int) -> bool:
        if (spec.get("protocol") or "TCP").lower() != proto:
            return False
        want = spec.get("port")
        if want is None:
            return True
        if isinstance(want, str):  # named: the destination pod's container port
            return want == model.port_name(port, proto)
        return want <= port <= spec.get("endPort", want)
