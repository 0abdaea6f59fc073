"""ClusterIP and NodePort allocation, with kube's error messages.

Both allocators keep only the *used* offsets (a set), so a /16 or an IPv6 range costs
nothing until addresses are handed out. Like kube-apiserver, the range has a small
lower band that dynamic allocation avoids while the upper band has room, so that
addresses users pick by hand (`clusterIP: 10.96.0.10`) rarely collide with random ones.
State is not persisted here: after a restart the server calls `mark` for every stored
Service.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Iterable

from .errors import APIError, FieldError, invalid

log = logging.getLogger("antrea_lab.apiserver.allocators")

RANDOM_PROBES = 32  # after this many collisions, scan: the band is nearly full


class _OffsetPool:
    """Free/used bookkeeping for offsets 0..size-1 with kube's static/dynamic bands."""

    def __init__(self, size: int, static_band: int, rng: random.Random | None) -> None:
        self.size = size
        self._static_band = min(static_band, size)
        self._used: set[int] = set()
        self._reserved: set[int] = set()
        self._rng = rng or random.Random()

    def used(self) -> int:
        return len(self._used)

    def is_used(self, offset: int) -> bool:
        return offset in self._used

    def take(self, offset: int) -> bool:
        if offset in self._used:
            return False
        self._used.add(offset)
        return True

    def release(self, offset: int) -> None:
        self._used.discard(offset)

    def reserve(self, offset: int) -> None:
        self._reserved.add(offset)

    def _free(self, offset: int) -> bool:
        return offset not in self._used and offset not in self._reserved

    def _pick_in(self, lo: int, hi: int) -> int | None:
        """A free offset in [lo, hi): random probes first, then a scan from a random start."""
        if hi <= lo:
            return None
        span = hi - lo
        for _ in range(min(RANDOM_PROBES, span)):
            o = lo + self._rng.randrange(span)
            if self._free(o):
                return o
        start = self._rng.randrange(span)
        for i in range(span):
            o = lo + (start + i) % span
            if self._free(o):
                return o
        return None

    def pick(self) -> int | None:
        reserved_free = sum(1 for r in self._reserved if r not in self._used)
        if len(self._used) + reserved_free >= self.size:
            return None
        found = self._pick_in(self._static_band, self.size)
        if found is None:
            found = self._pick_in(0, self._static_band)
        if found is not None:
            self._used.add(found)
        return found


def _static_band(size: int, lo: int, hi: int, div: int) -> int:
    # kube: min(max(lo, size/div), hi) addresses at the bottom are kept for static picks.
    return min(max(lo, size // div), hi)


class IPAllocator:
    """Service ClusterIPs from one CIDR (IPv4 or IPv6).

    `reserved` addresses are never handed out dynamically but may still be requested
    explicitly (the `kubernetes` Service asks for the first address this way).
    """

    def __init__(self, cidr: str, reserved: Iterable[str] = (), *,
                 rng: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.cidr = str(self.network)
        # Offsets are relative to network+1: the network address (and, for IPv4, the
        # broadcast address) is never allocatable. IPv6 also skips the last address,
        # which keeps both families symmetric and costs one address.
        self._base = int(self.network.network_address) + 1
        size = max(self.network.num_addresses - 2, 0)
        self._pool = _OffsetPool(size, _static_band(size, 16, 256, 16), rng)
        for ip in reserved:
            off = self._offset(ip)
            if off is not None:
                self._pool.reserve(off)

    @property
    def size(self) -> int:
        return self._pool.size

    def _offset(self, ip: str) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if addr.version != self.network.version:
            return None
        off = int(addr) - self._base
        return off if 0 <= off < self._pool.size else None

    def contains(self, ip: str) -> bool:
        """Whether `ip` lies in the allocatable range (used or not)."""
        return self._offset(ip) is not None

    def allocated(self, ip: str) -> bool:
        off = self._offset(ip)
        return off is not None and self._pool.is_used(off)

    def used(self) -> int:
        return self._pool.used()

    def allocate(self, requested: str | None = None, *, field: str = "spec.clusterIPs[0]",
                 kind: str = "Service", name: str = "") -> str:
        """Hand out `requested` (must be in range and free) or a free address.

        Raises APIError 422 (Invalid, cause on `field`) for a bad request and 500 when
        the range is full, as kube-apiserver does.
        """
        if requested:
            off = self._offset(requested)
            if off is None:
                why = (f"the provided IP ({requested}) is not in the valid range. "
                       f"The range of valid IPs is {self.cidr}")
            elif not self._pool.take(off):
                why = "provided IP is already allocated"
            else:
                return str(ipaddress.ip_address(self._base + off))
            raise invalid(kind, name, [FieldError(
                field, f'Invalid value: "{requested}": failed to allocate IP {requested}: {why}')])
        off = self._pool.pick()
        if off is None:
            raise APIError(500, "InternalError",
                           "Internal error occurred: failed to allocate a serviceIP: range is full")
        return str(ipaddress.ip_address(self._base + off))

    def mark(self, ip: str) -> bool:
        """Record an address already in use (rebuilding after restart); False if foreign."""
        off = self._offset(ip)
        if off is None:
            log.warning("stored ClusterIP outside the service range ip=%s cidr=%s", ip, self.cidr)
            return False
        self._pool.take(off)
        return True

    def release(self, ip: str) -> None:
        off = self._offset(ip)
        if off is not None:
            self._pool.release(off)


class PortAllocator:
    """NodePorts from the inclusive range [lo, hi]."""

    def __init__(self, lo: int, hi: int, *, rng: random.Random | None = None) -> None:
        if hi < lo:
            raise ValueError(f"empty port range {lo}-{hi}")
        self.lo, self.hi = lo, hi
        size = hi - lo + 1
        self._pool = _OffsetPool(size, _static_band(size, 16, 128, 32), rng)

    @property
    def size(self) -> int:
        return self._pool.size

    def contains(self, port: int) -> bool:
        return self.lo <= port <= self.hi

    def allocated(self, port: int) -> bool:
        return self.contains(port) and self._pool.is_used(port - self.lo)

    def used(self) -> int:
        return self._pool.used()

    def allocate(self, requested: int | None = None, *, field: str = "spec.ports[0].nodePort",
                 kind: str = "Service", name: str = "") -> int:
        """Like IPAllocator.allocate; the caller names the port's `field`."""
        if requested:
            if not self.contains(requested):
                why = (f"provided port is not in the valid range. "
                       f"The range of valid ports is {self.lo}-{self.hi}")
            elif not self._pool.take(requested - self.lo):
                why = "provided port is already allocated"
            else:
                return requested
            raise invalid(kind, name, [FieldError(field, f"Invalid value: {requested}: {why}")])
        off = self._pool.pick()
        if off is None:
            raise APIError(500, "InternalError",
                           "Internal error occurred: failed to allocate a nodePort: range is full")
        return self.lo + off

    def mark(self, port: int) -> bool:
        if not self.contains(port):
            log.warning("stored NodePort outside the range port=%d range=%d-%d",
                        port, self.lo, self.hi)
            return False
        self._pool.take(port - self.lo)
        return True

    def release(self, port: int) -> None:
        if self.contains(port):
            self._pool.release(port - self.lo)
