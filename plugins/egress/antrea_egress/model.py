"""What this Node must do for Egress, computed from the cluster as it is seen (no I/O).

Inputs: the Egresses and ExternalIPPools (typed views of `antrea_core.apis.egress`),
Pods, Namespace and Node labels, the live Nodes, and the addresses configured on this
Node. Output: a `Plan` that the plugin applies to the host (addresses, SNAT) and to OVS
(redirects into the tunnel), and the statuses this Node reports.

Rules (facts from Antrea's Egress documentation; choices where it leaves them open):

* appliedTo: podSelector alone selects Pods in every Namespace, namespaceSelector alone
  every Pod of the selected Namespaces, both: their intersection; neither: nothing.
  Host-network Pods, finished Pods and Pods without an IP are never selected.
* An Egress from a pool: its IP goes to the live Node, among those the pool's
  nodeSelector selects, that wins the rendezvous hash (`election.assign`), skipping
  Nodes that hold as many Egress IPs as they may (`egress.maxEgressIPsPerNode`, or the
  Node's annotation `node.antrea.io/max-egress-ips`, which wins). Without a pool
  the user configured the IP on some Node by hand: that Node (the one that finds the IP
  among its own addresses) is the Egress Node and says so in `status.egressNode`, which
  is how the other Nodes learn it.
* `egressIPs` lists IPs in order of preference (one per subnet, Antrea's multi-pool
  failover): the first one with a Node is the Egress's effective IP.
* A Pod selected by several Egresses uses the oldest (creationTimestamp, then name), so
  that every Node agrees. A Pod whose Egress has no Node at the moment leaves with the
  Node's IP like any other Pod (rather than losing connectivity).
* IPv4 only (the lab's and the tunnel flows' family); IPv6 Egress IPs are ignored with a
  warning by the plugin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from antrea_egress.election import assign

JSON = dict[str, Any]
MAX_EGRESS_IPS_ANNOTATION = "node.antrea.io/max-egress-ips"


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    name: str
    node: str
    labels: Mapping[str, str]
    ips: tuple[str, ...]

    @classmethod
    def from_obj(cls, obj: JSON, local_ips: tuple[str, ...] | None = None
                 ) -> PodRecord | None:
        """None for Pods Egress never applies to. `local_ips`: the Pod's IPs as this
        Node's CNI server gave them, used until the API shows them."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
            return None
        ips = [p.get("ip", "") for p in status.get("podIPs") or []] or \
              ([status["podIP"]] if status.get("podIP") else []) or list(local_ips or ())
        v4 = tuple(ip for ip in ips if ip and ipaddress.ip_address(ip).version == 4)
        if not v4:
            return None
        return cls(meta.get("namespace", ""), meta.get("name", ""), spec.get("nodeName", ""),
                   dict(meta.get("labels") or {}), v4)


@dataclass(frozen=True)
class NodeRecord:
    name: str
    labels: Mapping[str, str]
    transport_ip: str  # the first InternalIPv4 address: where the tunnel reaches it
    max_egress_ips: int | None = None  # the Node's annotation, when valid

    @classmethod
    def from_obj(cls, obj: JSON) -> NodeRecord:
        meta = obj.get("metadata") or {}
        addresses = (obj.get("status") or {}).get("addresses") or []
        ip = ""
        for kind in ("InternalIP", "ExternalIP"):
            for a in addresses:
                if a.get("type") == kind and ipaddress.ip_address(a["address"]).version == 4:
                    ip = a["address"]
                    break
            if ip:
                break
        limit = (meta.get("annotations") or {}).get(MAX_EGRESS_IPS_ANNOTATION)
        max_ips = int(limit) if limit is not None and str(limit).isdigit() else None
        return cls(meta.get("name", ""), dict(meta.get("labels") or {}), ip, max_ips)


@dataclass(frozen=True)
class Assignment:
    egress: str
    ip: str  # the effective Egress IP, "" when none of its IPs has a Node
    node: str  # the Egress Node, "" when none


@dataclass
class Plan:
    me: str
    assignments: dict[str, Assignment] = field(default_factory=dict)
    # Egress IPs this Node holds -> prefix length to configure them with.
    owned: dict[str, int] = field(default_factory=dict)
    # Egress IP held here -> the IPs of every Pod (any Node) leaving through it.
    snat: dict[str, frozenset[str]] = field(default_factory=dict)
    # Local Pod IP -> transport IP of the remote Egress Node its traffic is tunneled to.
    redirects: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def reports(self) -> dict[str, Assignment]:
        """The Egresses whose status this Node writes: those it is the Egress Node of."""
        return {n: a for n, a in self.assignments.items() if a.node == self.me}


def selects(egress: Any, pod: PodRecord, namespace_labels: Mapping[str, str] | None) -> bool:
    if egress.pod_selector is None and egress.namespace_selector is None:
        return False
    ns_selector = egress.namespace_selector
    if ns_selector is not None and (namespace_labels is None
                                    or not ns_selector.matches(namespace_labels)):
        return False
    return egress.pod_selector is None or egress.pod_selector.matches(pod.labels)


def _pool_for(egress: Any, ip: str, index: int, pools: Mapping[str, Any]) -> Any:
    """The pool an IP comes from: egressIPs[i] pairs with the i-th pool when both lists
    are given (Antrea's API), else the first pool that contains it."""
    names = list(egress.pools)
    if index < len(names) and names[index] in pools and pools[names[index]].contains(ip):
        return pools[names[index]]
    for name in names:
        pool = pools.get(name)
        if pool is not None and pool.contains(ip):
            return pool
    return None


def _pool_requests(ordered: list[Any], pools: Mapping[str, Any]
                   ) -> dict[tuple[str, int], tuple[str, Any]]:
    """(Egress, candidate index) -> (IPv4 address, its pool) for IPs from known pools."""
    found = {}
    for egress in ordered:
        if not egress.pools:
            continue
        for index, ip in enumerate(egress.requested_ips):
            pool = _pool_for(egress, ip, index, pools)
            if pool is not None and ipaddress.ip_address(ip).version == 4:
                found[(egress.name, index)] = (ip, pool)
    return found


def plan(me: str, egresses: Iterable[Any], pools: Mapping[str, Any],
         pods: Iterable[PodRecord], namespaces: Mapping[str, Mapping[str, str]],
         nodes: Mapping[str, NodeRecord], alive: set[str], local_ips: set[str],
         max_ips_per_node: int = 255) -> Plan:
    result = Plan(me)
    ordered = sorted(egresses, key=lambda e: (e.created, e.name))
    requests = _pool_requests(ordered, pools)
    eligible: dict[str, list[str]] = {}
    for ip, pool in requests.values():
        eligible[ip] = [n for n in alive
                        if n in nodes and pool.node_selector.matches(nodes[n].labels)]
    owners = assign(eligible, lambda n: nodes[n].max_egress_ips
                    if nodes[n].max_egress_ips is not None else max_ips_per_node)
    for egress in ordered:
        assignment = Assignment(egress.name, "", "")
        for index, ip in enumerate(egress.requested_ips):
            if ipaddress.ip_address(ip).version != 4:
                result.warnings.append(f"Egress {egress.name}: IPv6 egress IP {ip} ignored")
                continue
            if egress.pools:
                if (egress.name, index) not in requests:
                    continue  # not allocated from a known pool (yet): no Node may take it
                node = owners.get(ip)
                prefix = requests[(egress.name, index)][1].prefix_length or 32
            elif ip in local_ips:
                node, prefix = me, 0  # configured by hand: not ours to (re)configure
            else:
                node = egress.status_node if egress.status_ip in ("", ip) else None
                node = node if node and node != me else None
                prefix = 0
            if node:
                assignment = Assignment(egress.name, ip, node)
                if node == me and prefix:
                    result.owned[ip] = prefix
                break
        result.assignments[egress.name] = assignment
    members: dict[str, set[str]] = {}
    for pod in pods:
        chosen = next((e for e in ordered
                       if selects(e, pod, namespaces.get(pod.namespace))), None)
        if chosen is None:
            continue
        a = result.assignments[chosen.name]
        if not a.node:
            continue
        if a.node == me:
            members.setdefault(a.ip, set()).update(pod.ips)
        elif pod.node == me:
            peer = nodes.get(a.node)
            if peer is None or not peer.transport_ip:
                result.warnings.append(f"Egress {a.egress}: Node {a.node} has no IPv4 "
                                       "address to tunnel to")
                continue
            for ip in pod.ips:
                result.redirects[ip] = peer.transport_ip
    for a in result.assignments.values():
        if a.node == me:
            result.snat[a.ip] = frozenset(members.get(a.ip, ()))
    return result
