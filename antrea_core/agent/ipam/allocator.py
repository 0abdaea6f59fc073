"""Per-node pod IPAM over the Node's podCIDRs (IPv4, IPv6 or dual-stack).

One address per CIDR (so one per family) for each attachment, keyed by (container id,
ifname). The first address of a CIDR is the gateway (the node's antrea-gw0); the network
address, the gateway and the last address (IPv4 broadcast; kept free for IPv6 too, as
host-local does) are never handed out. Allocation is next-fit from the last address given,
so a just-released address is not reused at once (stale ARP/conntrack entries of the old
pod would hit the new one).

State is one JSON file, replaced atomically (write temp, fsync, rename, fsync the
directory) on every change, so an agent restart or crash keeps every allocation that was
answered to a runtime. The allocator is thread-safe.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("antrea.agent.ipam")

STATE_FILE = "allocations.json"
STATE_VERSION = 1

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class IPAMError(Exception):
    """IPAM could not do what was asked; the message names the CIDR or file involved."""


class PoolExhausted(IPAMError):
    def __init__(self, cidr: IPNetwork) -> None:
        super().__init__(f"no free address left in pod CIDR {cidr}")
        self.cidr = cidr


@dataclass(frozen=True)
class AllocatedIP:
    """An address with the prefix length of its pod CIDR, and that CIDR's gateway."""

    address: IPInterface
    gateway: IPAddress

    @property
    def version(self) -> int:
        return self.address.version


@dataclass(frozen=True)
class Allocation:
    container_id: str
    ifname: str
    ips: tuple[AllocatedIP, ...]  # in pod-CIDR order (IPv4 first when dual-stack)
    owner: str = ""  # "namespace/name" of the pod, for humans and antctl

    def to_json(self) -> dict[str, Any]:
        return {"containerID": self.container_id, "ifname": self.ifname, "owner": self.owner,
                "ips": [str(ip.address) for ip in self.ips]}


class Pool:
    """The allocatable addresses of one pod CIDR."""

    def __init__(self, cidr: str) -> None:
        try:
            self.network: IPNetwork = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise IPAMError(f"invalid pod CIDR {cidr!r}: {exc}") from None
        base = int(self.network.network_address)
        self.first = base + 2  # skip the network address and the gateway
        self.last = base + self.network.num_addresses - 2  # skip the last (broadcast)
        if self.first > self.last:
            raise IPAMError(f"pod CIDR {self.network} is too small: it has no address left "
                            "after network, gateway and broadcast")
        self.gateway: IPAddress = ipaddress.ip_address(base + 1)
        self.used: set[int] = set()
        self.cursor = self.first - 1  # the last address handed out

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def contains(self, address: IPAddress) -> bool:
        return address.version == self.network.version and \
            self.first <= int(address) <= self.last

    def take(self) -> AllocatedIP:
        if len(self.used) >= self.size:
            raise PoolExhausted(self.network)
        candidate = self.cursor
        # The set is never full here, so this ends; with few addresses used (IPv6 /64)
        # it ends after a handful of steps.
        while True:
            candidate = self.first if candidate >= self.last else candidate + 1
            if candidate not in self.used:
                break
        self.used.add(candidate)
        self.cursor = candidate
        return self._allocated(candidate)

    def _allocated(self, value: int) -> AllocatedIP:
        address = ipaddress.ip_interface(f"{ipaddress.ip_address(value)}/"
                                         f"{self.network.prefixlen}")
        return AllocatedIP(address=address, gateway=self.gateway)


class NodeIPAM:
    """Allocations of this node's pod addresses, persisted under ``state_dir``."""

    def __init__(self, pod_cidrs: Sequence[str], state_dir: str | os.PathLike[str]) -> None:
        if not pod_cidrs:
            raise IPAMError("the Node has no podCIDRs")
        self.pools = [Pool(c) for c in pod_cidrs]
        versions = [p.network.version for p in self.pools]
        if len(set(versions)) != len(versions):
            raise IPAMError(f"at most one pod CIDR per IP family, got {', '.join(pod_cidrs)}")
        self.pools.sort(key=lambda p: p.network.version)  # IPv4 first, as kubelet lists IPs
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / STATE_FILE
        self._lock = threading.Lock()
        self._allocations: dict[tuple[str, str], Allocation] = {}
        self._load()

    # -- queries ----------------------------------------------------------------------
    @property
    def gateways(self) -> tuple[IPAddress, ...]:
        return tuple(p.gateway for p in self.pools)

    def get(self, container_id: str, ifname: str) -> Allocation | None:
        with self._lock:
            return self._allocations.get((container_id, ifname))

    def allocations(self) -> list[Allocation]:
        with self._lock:
            return list(self._allocations.values())

    # -- changes ----------------------------------------------------------------------
    def allocate(self, container_id: str, ifname: str, owner: str = "") -> Allocation:
        """One address from every pod CIDR; the same answer for a repeated call."""
        key = (container_id, ifname)
        with self._lock:
            existing = self._allocations.get(key)
            if existing is not None:
                return existing
            taken: list[tuple[Pool, AllocatedIP]] = []
            cursors = [p.cursor for p in self.pools]
            try:
                for pool in self.pools:
                    taken.append((pool, pool.take()))
            except PoolExhausted:
                # Dual-stack is all or nothing: give back what the other family took.
                for (pool, ip), cursor in zip(taken, cursors, strict=False):
                    pool.used.discard(int(ip.address.ip))
                    pool.cursor = cursor
                raise
            allocation = Allocation(container_id, ifname, tuple(ip for _, ip in taken), owner)
            self._allocations[key] = allocation
            try:
                self._save()
            except OSError:
                del self._allocations[key]
                for (pool, ip), cursor in zip(taken, cursors, strict=True):
                    pool.used.discard(int(ip.address.ip))
                    pool.cursor = cursor
                raise
        log.info("allocated container=%s ifname=%s owner=%s ips=%s", container_id, ifname,
                 owner or "-", ",".join(str(ip.address) for ip in allocation.ips))
        return allocation

    def release(self, container_id: str, ifname: str) -> Allocation | None:
        """Free the attachment's addresses; None (and no error) if it had none."""
        with self._lock:
            allocation = self._allocations.pop((container_id, ifname), None)
            if allocation is None:
                return None
            self._forget(allocation)
            self._save()
        log.info("released container=%s ifname=%s ips=%s", container_id, ifname,
                 ",".join(str(ip.address) for ip in allocation.ips))
        return allocation

    def release_stale(self, known_container_ids: Iterable[str]) -> list[Allocation]:
        """Release allocations of containers not in ``known_container_ids`` (pods deleted
        while the agent was down); returns what was released."""
        known = set(known_container_ids)
        with self._lock:
            stale = [a for k, a in self._allocations.items() if k[0] not in known]
            if not stale:
                return []
            for allocation in stale:
                del self._allocations[(allocation.container_id, allocation.ifname)]
                self._forget(allocation)
            self._save()
        for allocation in stale:
            log.info("released stale container=%s ifname=%s owner=%s ips=%s",
                     allocation.container_id, allocation.ifname, allocation.owner or "-",
                     ",".join(str(ip.address) for ip in allocation.ips))
        return stale

    # -- persistence ------------------------------------------------------------------
    def _forget(self, allocation: Allocation) -> None:
        for ip in allocation.ips:
            for pool in self.pools:
                if pool.contains(ip.address.ip):
                    pool.used.discard(int(ip.address.ip))

    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # Never start over silently: that would hand out addresses pods still use.
            raise IPAMError(f"cannot read IPAM state {self.path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise IPAMError(f"IPAM state {self.path} has an unknown format")
        try:
            for entry in doc.get("allocations", []):
                self._restore(entry)
            cursors = doc.get("cursors", {})
            for pool in self.pools:
                value = cursors.get(str(pool.network))
                if value is not None:
                    pool.cursor = int(ipaddress.ip_address(value))
        except (KeyError, TypeError, ValueError) as exc:
            raise IPAMError(f"IPAM state {self.path} is corrupt: {exc}") from None
        log.info("loaded IPAM state path=%s allocations=%d", self.path,
                 len(self._allocations))

    def _restore(self, entry: dict[str, Any]) -> None:
        ips = []
        for text in entry["ips"]:
            address = ipaddress.ip_interface(text)
            pool = next((p for p in self.pools if p.contains(address.ip)), None)
            if pool is None:
                # The Node's podCIDR changed: keep the record so DEL still finds it, but it
                # occupies nothing in today's pools.
                log.warning("allocation outside the pod CIDRs container=%s ip=%s",
                            entry["containerID"], text)
                gateway = address.network.network_address + 1
            else:
                pool.used.add(int(address.ip))
                gateway = pool.gateway
            ips.append(AllocatedIP(address=address, gateway=gateway))
        allocation = Allocation(entry["containerID"], entry["ifname"], tuple(ips),
                                entry.get("owner", ""))
        self._allocations[(allocation.container_id, allocation.ifname)] = allocation

    def _save(self) -> None:
        doc = {
            "version": STATE_VERSION,
            "savedAt": time.time(),
            "cursors": {str(p.network): str(ipaddress.ip_address(p.cursor))
                        for p in self.pools if p.cursor >= p.first},
            "allocations": [a.to_json() for a in self._allocations.values()],
        }
        write_atomically(self.path, json.dumps(doc, indent=1).encode())


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
