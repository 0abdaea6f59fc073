"""The Service model AntreaProxy programs: plain data built from raw Service and
EndpointSlice dicts (as the API returns them), with no Kubernetes client involved.

One `ServicePort` per (Service, port): its frontends (ClusterIPs, NodePorts, external and
LoadBalancer IPs) and the endpoints that serve it, resolved through the EndpointSlices
(which already carry named targetPorts as numbers). Traffic policies are applied here:
`internal_endpoints` are what pod traffic to a ClusterIP may reach, `external_endpoints`
what NodePort/LoadBalancer/external-IP traffic may reach.

Topology-aware routing: where traffic policy is Cluster, a node in a zone (label
`topology.kubernetes.io/zone`) uses only the endpoints hinted for its zone
(`hints.forZones`, set by the EndpointSlice controller), provided every endpoint has
hints and at least one is for this zone; otherwise all endpoints, as kube-proxy does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = Mapping[str, Any]
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ZONE_LABEL = "topology.kubernetes.io/zone"
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    node: str | None = None  # the Node the endpoint runs on (None: unknown)
    zones: tuple[str, ...] = ()  # hints.forZones (empty: no hint)

    @property
    def key(self) -> tuple[str, int]:
        return self.ip, self.port


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, everything needed to program it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP, SCTP
    port: int
    cluster_ips: tuple[str, ...]
    node_port: int | None = None
    external_ips: tuple[str, ...] = ()  # spec.externalIPs + LoadBalancer ingress IPs
    # The LoadBalancer ingress IPs among external_ips, and who may reach them
    # (spec.loadBalancerSourceRanges, IPv4 CIDRs; empty: everyone).
    load_balancer_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()
    health_check_node_port: int | None = None  # LoadBalancer, externalTrafficPolicy Local
    endpoints: tuple[Endpoint, ...] = ()  # every ready endpoint, sorted
    affinity_timeout: int | None = None  # ClientIP affinity seconds, None: no affinity
    external_local: bool = False  # externalTrafficPolicy: Local
    internal_local: bool = False  # internalTrafficPolicy: Local
    local_node: str = ""
    local_zone: str = ""  # this node's topology.kubernetes.io/zone

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.namespace, self.name, self.port_name, self.protocol

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name or self.port}/{self.protocol}"

    def _local(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.node == self.local_node)

    def _cluster(self) -> tuple[Endpoint, ...]:
        """Endpoints for traffic policy Cluster, narrowed by topology hints."""
        if not self.local_zone or not self.endpoints or \
                not all(e.zones for e in self.endpoints):
            return self.endpoints
        in_zone = tuple(e for e in self.endpoints if self.local_zone in e.zones)
        return in_zone or self.endpoints

    @property
    def internal_endpoints(self) -> tuple[Endpoint, ...]:
        return self._local() if self.internal_local else self._cluster()

    @property
    def external_endpoints(self) -> tuple[Endpoint, ...]:
        return self._local() if self.external_local else self._cluster()


@dataclass
class ServiceCatalog:
    """Services and EndpointSlices by key, as last seen; `service_ports()` derives the
    model. Fed by the informers, read by the proxier; no locking (one writer thread)."""

    local_node: str
    local_zone: str = ""
    service_proxy_name: str = ""
    skip_services: frozenset[str] = frozenset()
    proxy_load_balancer_ips: bool = True
    services: dict[str, JSON] = field(default_factory=dict)  # "ns/name"
    slices: dict[str, JSON] = field(default_factory=dict)  # "ns/slice-name"

    def set_service(self, obj: JSON | None, key: str) -> None:
        if obj is None:
            self.services.pop(key, None)
        else:
            self.services[key] = obj

    def set_node(self, obj: JSON | None, key: str) -> None:
        """This node (the only one watched): its zone label."""
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        self.local_zone = str(labels.get(ZONE_LABEL, ""))

    def set_slice(self, obj: JSON | None, key: str) -> None:
        if obj is None:
            self.slices.pop(key, None)
        else:
            self.slices[key] = obj

    def service_ports(self) -> list[ServicePort]:
        by_service: dict[str, list[JSON]] = {}
        for obj in self.slices.values():
            meta = obj.get("metadata") or {}
            svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if svc:
                by_service.setdefault(f"{meta.get('namespace', '')}/{svc}", []).append(obj)
        out: list[ServicePort] = []
        for key, svc in sorted(self.services.items()):
            if not self._proxied(key, svc):
                continue
            out.extend(service_ports(svc, by_service.get(key, ()), self.local_node,
                                     self.proxy_load_balancer_ips, self.local_zone))
        return out

    def _proxied(self, key: str, svc: JSON) -> bool:
        labels = (svc.get("metadata") or {}).get("labels") or {}
        if labels.get(PROXY_NAME_LABEL, "") != self.service_proxy_name:
            return False  # another proxy's Service (serviceProxyName)
        spec = svc.get("spec") or {}
        ips = set(spec.get("clusterIPs") or [spec.get("clusterIP")])
        return key not in self.skip_services and not ips & self.skip_services


def _ipv4(ips: Iterable[str | None]) -> tuple[str, ...]:
    """The usable IPv4 addresses (gap: IPv6 Services are not programmed yet)."""
    out = []
    for ip in ips:
        if not ip or ip == "None":
            continue
        try:
            if ipaddress.ip_address(ip).version == 4:
                out.append(ip)
        except ValueError:
            continue
    return tuple(dict.fromkeys(out))


def _ipv4_cidrs(cidrs: Iterable[str]) -> tuple[str, ...]:
    """Normalized IPv4 CIDRs; others are skipped (IPv6 is a gap; the API server has
    validated the syntax)."""
    out = []
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(str(cidr).strip(), strict=False)
        except ValueError:
            continue
        if net.version == 4:
            out.append(str(net))
    return tuple(dict.fromkeys(out))


def _ready(endpoint: JSON) -> bool:
    # EndpointSlice semantics: a missing "ready" condition means ready.
    ready = (endpoint.get("conditions") or {}).get("ready")
    return ready is None or bool(ready)


def slice_endpoints(slices: Iterable[JSON], port_name: str, protocol: str
                    ) -> tuple[Endpoint, ...]:
    """Ready endpoints serving the Service port named `port_name` over `protocol`."""
    found: set[Endpoint] = set()
    for obj in slices:
        if obj.get("addressType", "IPv4") != "IPv4":
            continue
        for p in obj.get("ports") or []:
            if (p.get("name") or "") != port_name or p.get("protocol", "TCP") != protocol:
                continue
            if not p.get("port"):
                continue
            for ep in obj.get("endpoints") or []:
                if not _ready(ep):
                    continue
                zones = tuple(sorted(str(z.get("name")) for z in
                                     (ep.get("hints") or {}).get("forZones") or []
                                     if z.get("name")))
                for ip in _ipv4(ep.get("addresses") or []):
                    found.add(Endpoint(ip, int(p["port"]), ep.get("nodeName"), zones))
    return tuple(sorted(found))


def service_ports(svc: JSON, slices: Iterable[JSON], local_node: str,
                  proxy_load_balancer_ips: bool = True, local_zone: str = ""
                  ) -> list[ServicePort]:
    """The `ServicePort`s of one Service (none for headless or ExternalName Services)."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind == "ExternalName":
        return []
    cluster_ips = _ipv4(spec.get("clusterIPs") or [spec.get("clusterIP")])
    if not cluster_ips:
        return []  # headless: DNS only
    external = list(spec.get("externalIPs") or [])
    lb_ips: tuple[str, ...] = ()
    if kind == "LoadBalancer" and proxy_load_balancer_ips:
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        lb_ips = _ipv4(i.get("ip") for i in ingress)
        external += lb_ips
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = int(config.get("timeoutSeconds") or 10800)
    slices = list(slices)
    out = []
    for p in spec.get("ports") or []:
        protocol = p.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            continue
        name = p.get("name") or ""
        node_port = p.get("nodePort") if kind in ("NodePort", "LoadBalancer") else None
        out.append(ServicePort(
            namespace=meta.get("namespace", ""), name=meta.get("name", ""), port_name=name,
            protocol=protocol, port=int(p["port"]), cluster_ips=cluster_ips,
            node_port=int(node_port) if node_port else None,
            external_ips=_ipv4(external),
            load_balancer_ips=lb_ips,
            source_ranges=_ipv4_cidrs(spec.get("loadBalancerSourceRanges") or ()) if lb_ips
            else (),
            endpoints=slice_endpoints(slices, name, protocol),
            affinity_timeout=affinity,
            external_local=spec.get("externalTrafficPolicy") == "Local",
            health_check_node_port=int(spec["healthCheckNodePort"])
            if kind == "LoadBalancer" and spec.get("healthCheckNodePort") else None,
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            local_node=local_node, local_zone=local_zone))
    return out
