"""Node IPAM: give every Node a podCIDR (one per cluster-CIDR family) from the cluster CIDRs.

The allocator is rebuilt from the Nodes' existing spec.podCIDRs before the first
allocation so a restart never hands out a CIDR twice, and an existing assignment is
never changed (the kubelet and the CNI already use it).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from .informer import Controller, Informer
from .kubeclient import EVENTS, JSON, NODES, KubeClient

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CidrExhaustedError(Exception):
    pass


class CidrAllocator:
    """Subnets of one cluster CIDR handed out lowest-first."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.cluster: Network = ipaddress.ip_network(cluster_cidr)
        if not self.cluster.prefixlen <= mask_size <= self.cluster.max_prefixlen:
            raise ValueError(f"mask size /{mask_size} does not fit in {cluster_cidr}")
        if mask_size - self.cluster.prefixlen > 24:
            raise ValueError(f"{cluster_cidr} split into /{mask_size} gives too many subnets")
        self.mask_size = mask_size
        self.capacity = 1 << (mask_size - self.cluster.prefixlen)
        self._step = 1 << (self.cluster.max_prefixlen - mask_size)
        self._used: set[int] = set()
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        return self.cluster.version

    def _index(self, cidr: str) -> int | None:
        """Index of cidr if it is exactly one of our subnets, else None."""
        try:
            net = ipaddress.ip_network(cidr)
        except ValueError:
            return None
        if (net.version != self.cluster.version or net.prefixlen != self.mask_size
                or not net.subnet_of(self.cluster)):  # type: ignore[arg-type]
            return None
        offset = int(net.network_address) - int(self.cluster.network_address)
        return offset // self._step

    def _subnet(self, index: int) -> str:
        base = int(self.cluster.network_address) + index * self._step
        return str(ipaddress.ip_network((base, self.mask_size)))

    def occupy(self, cidr: str) -> bool:
        """Mark an existing assignment used; False if it is not ours (kept anyway)."""
        idx = self._index(cidr)
        if idx is None:
            return False
        with self._lock:
            self._used.add(idx)
        return True

    def release(self, cidr: str) -> None:
        idx = self._index(cidr)
        if idx is not None:
            with self._lock:
                self._used.discard(idx)

    def allocate(self) -> str:
        with self._lock:
            for idx in range(self.capacity):
                if idx not in self._used:
                    self._used.add(idx)
                    return self._subnet(idx)
        raise CidrExhaustedError(f"no free /{self.mask_size} left in {self.cluster}")

    def used(self) -> int:
        with self._lock:
            return len(self._used)


class NodeCidrs:
    """One allocator per cluster CIDR (dual-stack: an IPv4 and an IPv6 one)."""

    def __init__(self, cluster_cidrs: Sequence[str], mask_v4: int = 24,
                 mask_v6: int = 64) -> None:
        if not cluster_cidrs or len(cluster_cidrs) > 2:
            raise ValueError("give one cluster CIDR, or two of different families")
        self.allocators = []
        for cidr in cluster_cidrs:
            version = ipaddress.ip_network(cidr).version
            self.allocators.append(CidrAllocator(cidr, mask_v4 if version == 4 else mask_v6))
        if len({a.version for a in self.allocators}) != len(self.allocators):
            raise ValueError("dual-stack cluster CIDRs must be one IPv4 and one IPv6")
        self._lock = threading.Lock()

    def occupy_node(self, node: JSON) -> None:
        for cidr in pod_cidrs(node):
            for alloc in self.allocators:
                alloc.occupy(cidr)

    def release_node(self, node: JSON) -> None:
        for cidr in pod_cidrs(node):
            for alloc in self.allocators:
                alloc.release(cidr)

    def allocate_node(self) -> list[str]:
        """One CIDR per family, in cluster-CIDR order; all or nothing."""
        got: list[tuple[CidrAllocator, str]] = []
        with self._lock:
            try:
                for alloc in self.allocators:
                    got.append((alloc, alloc.allocate()))
            except CidrExhaustedError:
                for alloc, cidr in got:
                    alloc.release(cidr)
                raise
        return [cidr for _, cidr in got]


def pod_cidrs(node: JSON) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


def node_event(node: JSON, reason: str, message: str, component: str,
               event_type: str = "Normal") -> JSON:
    """A core/v1 Event about a Node (cluster-scoped objects' events live in "default")."""
    meta = node.get("metadata") or {}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'node')}.", "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": meta.get("name"),
                           "uid": meta.get("uid")},
        "reason": reason, "message": message, "type": event_type,
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, client: KubeClient, nodes: Informer, cidrs: NodeCidrs) -> None:
        super().__init__()
        self.client = client
        self.nodes = nodes
        self.cidrs = cidrs
        self._exhausted_reported: set[str] = set()
        # Our successful patches by node uid: the cache may still show the node without
        # a podCIDR for a moment, and a second allocation must not overwrite the first.
        self._assigned: dict[str, list[str]] = {}
        nodes.add_handler(self._on_node)

    def informers(self) -> list[Informer]:
        return [self.nodes]

    def on_synced(self) -> None:
        # Rebuild the used set before any allocation (restart safety).
        for node in self.nodes.list():
            self.cidrs.occupy_node(node)
        self.log.info("rebuilt allocator nodes=%d used=%s", len(self.nodes.list()),
                      [a.used() for a in self.cidrs.allocators])

    def _on_node(self, old: JSON | None, new: JSON | None) -> None:
        if new is None and old is not None:
            self._assigned.pop(str(old.get("metadata", {}).get("uid")), None)
            if self.nodes.synced:
                self.cidrs.release_node(old)
                self.log.info("released node=%s cidrs=%s", object_name(old), pod_cidrs(old))
            # Exhausted nodes may now fit.
            for key in self._exhausted_reported.copy():
                self.queue.add(key)
            return
        if new is not None and self.nodes.synced:
            # Assignments made elsewhere (or by us, echoed back) must be known as used.
            self.cidrs.occupy_node(new)
        if new is not None:
            self.queue.add(object_name(new))

    def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self._exhausted_reported.discard(key)
            return
        if pod_cidrs(node) or node["metadata"].get("uid") in self._assigned:
            self._exhausted_reported.discard(key)
            return
        try:
            cidrs = self.cidrs.allocate_node()
        except CidrExhaustedError as exc:
            self.log.error("cannot allocate podCIDR node=%s error=%s", key, exc)
            if key not in self._exhausted_reported:
                self._exhausted_reported.add(key)
                self.client.create(EVENTS, node_event(
                    node, "CIDRNotAvailable",
                    f"Node {key} status is now: CIDRNotAvailable ({exc})", "cidrAllocator"),
                    namespace="default")
            return
        patch = {"metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
                 "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}}
        try:
            self.client.patch(NODES, key, patch)
        except ApiException as exc:
            for alloc in self.cidrs.allocators:
                for cidr in cidrs:
                    alloc.release(cidr)
            if exc.status == 404:
                return
            raise  # 409: the node changed; retry with the fresh copy
        self._assigned[str(node["metadata"].get("uid"))] = cidrs
        self._exhausted_reported.discard(key)
        self.log.info("assigned node=%s podCIDRs=%s", key, cidrs)


def object_name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))
