"""Typed views of Antrea's Egress and ExternalIPPool custom resources (no I/O), and the
status write both antrea-controller and antrea-agent use.

The API is `crd.antrea.io/v1beta1` (CRDs in `antrea_core/apis/crds/`). `from_obj` takes
the API's JSON dict and raises ValueError naming the offending field
(`spec.ipRanges[1].end: ...`); the API server's schema already rejects most of these, the
checks here guard against objects that bypassed it and against the semantic rules a
schema cannot express (start <= end, one address family per range).

Allocatable IPs of a pool: a `cidr` range excludes its first address and, for IPv4, its
last (network and broadcast), so a /28 gives 14 IPs and a /31 or /32 none; a
`start`-`end` range gives every address in it. Overlapping ranges count once. Pools are
handled as integer intervals, so a /8 costs the same as a /28.
"""

from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from antrea_core.controller.grouping.selectors import LabelSelector, SelectorError, parse_selector
from antrea_core.k8s.resources import EGRESSES, Resource

log = logging.getLogger("antrea.apis.egress")

JSON = dict[str, Any]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

T = TypeVar("T")

CONDITION_IP_ALLOCATED = "IPAllocated"  # written by antrea-controller
CONDITION_IP_ASSIGNED = "IPAssigned"  # written by the Egress Node's antrea-agent


def _parse_ip(value: Any, where: str) -> IPAddress:
    if type(value) is not str:
        raise ValueError(f"{where}: must be a string IP address, got {value!r}")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a valid IPv4 or IPv6 address") from None


def _selector(obj: Any, where: str) -> LabelSelector | None:
    """None when the selector is absent (which differs from {}: select everything)."""
    if obj is None:
        return None
    try:
        return parse_selector(obj, where)
    except SelectorError as exc:
        raise ValueError(str(exc)) from None


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(type(v) is str for v in value):
        raise ValueError(f"{where}: must be a list of strings")
    return tuple(value)


# ------------------------------------------------------------------------ ExternalIPPool

@dataclass(frozen=True)
class IPInterval:
    """Allocatable addresses first..last (inclusive, as integers) of one family."""
    version: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def _address(version: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def _parse_range(item: Any, where: str) -> IPInterval | None:
    """The allocatable interval of one ipRanges item; None when it holds no address."""
    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be an object with cidr or start and end")
    cidr, start, end = item.get("cidr"), item.get("start"), item.get("end")
    if cidr is not None:
        if start is not None or end is not None:
            raise ValueError(f"{where}: cidr and start/end are mutually exclusive")
        if type(cidr) is not str or "/" not in cidr:
            raise ValueError(f"{where}.cidr: {cidr!r} is not a CIDR (address/prefix)")
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{where}.cidr: {cidr!r} is not a valid CIDR") from None
        first = int(net.network_address) + 1
        last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
        return IPInterval(net.version, first, last) if first <= last else None
    if start is None or end is None:
        missing = "start" if start is None else "end"
        raise ValueError(f"{where}.{missing}: required when cidr is not set")
    a, b = _parse_ip(start, f"{where}.start"), _parse_ip(end, f"{where}.end")
    if a.version != b.version:
        raise ValueError(f"{where}.end: {end} is not of the same IP family as start {start}")
    if int(b) < int(a):
        raise ValueError(f"{where}.end: {end} is lower than start {start}")
    return IPInterval(a.version, int(a), int(b))


def _merge(intervals: list[IPInterval]) -> tuple[IPInterval, ...]:
    merged: list[IPInterval] = []
    for iv in sorted(intervals, key=lambda i: (i.version, i.first)):
        prev = merged[-1] if merged else None
        if prev is not None and prev.version == iv.version and iv.first <= prev.last + 1:
            merged[-1] = IPInterval(iv.version, prev.first, max(prev.last, iv.last))
        else:
            merged.append(iv)
    return tuple(merged)


@dataclass(frozen=True)
class ExternalIPPool:
    name: str
    uid: str
    node_selector: LabelSelector  # empty selector: every Node
    # Allocatable IPs: disjoint intervals, IPv4 first then IPv6, ascending.
    intervals: tuple[IPInterval, ...]
    prefix_length: int | None = None  # from subnetInfo; None when not set
    gateway: str = ""
    vlan: int = 0
    resource_version: str = ""
    status_total: int | None = None
    status_used: int | None = None
    _starts: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> ExternalIPPool:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise ValueError("spec: required")
        ranges = spec.get("ipRanges")
        if ranges is None:
            ranges = []
        if not isinstance(ranges, list):
            raise ValueError("spec.ipRanges: must be a list")
        intervals = [iv for i, item in enumerate(ranges)
                     if (iv := _parse_range(item, f"spec.ipRanges[{i}]")) is not None]
        node_selector = _selector(spec.get("nodeSelector") or {}, "spec.nodeSelector")
        assert node_selector is not None
        prefix, gateway, vlan = None, "", 0
        info = spec.get("subnetInfo")
        if info is not None:
            if not isinstance(info, dict):
                raise ValueError("spec.subnetInfo: must be an object")
            gw = _parse_ip(info.get("gateway"), "spec.subnetInfo.gateway")
            prefix = info.get("prefixLength")
            limit = 32 if gw.version == 4 else 128
            if type(prefix) is not int or not 1 <= prefix <= limit:
                raise ValueError(f"spec.subnetInfo.prefixLength: {prefix!r} must be an "
                                 f"integer in 1..{limit}")
            vlan = info.get("vlan", 0)
            if type(vlan) is not int or not 0 <= vlan <= 4094:
                raise ValueError(f"spec.subnetInfo.vlan: {vlan!r} must be in 0..4094")
            gateway = str(gw)
        usage = (obj.get("status") or {}).get("usage") or {}
        merged = _merge(intervals)
        return cls(name=meta.get("name", ""), uid=meta.get("uid", ""),
                   node_selector=node_selector, intervals=merged, prefix_length=prefix,
                   gateway=gateway, vlan=vlan,
                   resource_version=meta.get("resourceVersion", ""),
                   status_total=usage.get("total"), status_used=usage.get("used"),
                   _starts=_offsets(merged))

    def size(self) -> int:
        """How many IPs the pool can allocate."""
        return sum(iv.size for iv in self.intervals)

    def contains(self, ip: str) -> bool:
        """True when ip is one of the pool's allocatable IPs."""
        return self.offset_of(ip) is not None

    def offset_of(self, ip: str) -> int | None:
        """The position of ip in the pool's allocation order, None if not in the pool."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        value = int(addr)
        for iv, start in zip(self.intervals, self._starts, strict=True):
            if iv.version == addr.version and iv.first <= value <= iv.last:
                return start + value - iv.first
        return None

    def ip_at(self, offset: int) -> str:
        """The offset-th allocatable IP (0 = the first); IndexError past the end."""
        if offset < 0:
            raise IndexError(offset)
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0 or offset - self._starts[i] >= self.intervals[i].size:
            raise IndexError(offset)
        iv = self.intervals[i]
        return _address(iv.version, iv.first + offset - self._starts[i])

    def ips(self) -> Iterator[str]:
        """Every allocatable IP in allocation order, lazily."""
        for iv in self.intervals:
            for value in range(iv.first, iv.last + 1):
                yield _address(iv.version, value)


def _offsets(intervals: tuple[IPInterval, ...]) -> tuple[int, ...]:
    starts, total = [], 0
    for iv in intervals:
        starts.append(total)
        total += iv.size
    return tuple(starts)


# -------------------------------------------------------------------------------- Egress

@dataclass(frozen=True)
class Egress:
    name: str
    uid: str
    created: str  # metadata.creationTimestamp (RFC 3339), "" when absent
    # appliedTo: None when the selector is absent. Both None selects nothing.
    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    egress_ip: str  # spec.egressIP, normalized; "" when none
    # spec.egressIPs, normalized, "" kept in place: the i-th IP pairs with the i-th pool.
    egress_ips: tuple[str, ...]
    pools: tuple[str, ...]  # spec.externalIPPool then spec.externalIPPools, deduplicated
    status_node: str = ""
    status_ip: str = ""
    bandwidth: tuple[str, str] | None = None  # (rate, burst) Quantity strings
    conditions: tuple[JSON, ...] = ()
    resource_version: str = ""

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Egress:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise ValueError("spec: required")
        applied = spec.get("appliedTo")
        if not isinstance(applied, dict):
            raise ValueError("spec.appliedTo: required (an object with podSelector and/or "
                             "namespaceSelector)")
        pod_sel = _selector(applied.get("podSelector"), "spec.appliedTo.podSelector")
        ns_sel = _selector(applied.get("namespaceSelector"),
                           "spec.appliedTo.namespaceSelector")
        egress_ip = ""
        if spec.get("egressIP"):
            egress_ip = str(_parse_ip(spec["egressIP"], "spec.egressIP"))
        egress_ips = tuple(str(_parse_ip(ip, f"spec.egressIPs[{i}]")) if ip else ""
                           for i, ip in enumerate(_str_list(spec.get("egressIPs"),
                                                            "spec.egressIPs")))
        pools: list[str] = []
        single = spec.get("externalIPPool")
        if single is not None and type(single) is not str:
            raise ValueError("spec.externalIPPool: must be a string")
        for name in ((single,) if single else ()) + _str_list(spec.get("externalIPPools"),
                                                                "spec.externalIPPools"):
            if name and name not in pools:
                pools.append(name)
        bandwidth = None
        bw = spec.get("bandwidth")
        if bw is not None:
            if not isinstance(bw, dict) or type(bw.get("rate")) is not str \
                    or type(bw.get("burst")) is not str:
                raise ValueError("spec.bandwidth: rate and burst are required strings")
            bandwidth = (bw["rate"], bw["burst"])
        status = obj.get("status") or {}
        return cls(name=meta.get("name", ""), uid=meta.get("uid", ""),
                   created=meta.get("creationTimestamp", "") or "",
                   pod_selector=pod_sel, namespace_selector=ns_sel,
                   egress_ip=egress_ip, egress_ips=egress_ips, pools=tuple(pools),
                   status_node=status.get("egressNode", "") or "",
                   status_ip=status.get("egressIP", "") or "",
                   bandwidth=bandwidth,
                   conditions=tuple(c for c in status.get("conditions") or []
                                    if isinstance(c, dict)),
                   resource_version=meta.get("resourceVersion", ""))

    @property
    def pool_names(self) -> tuple[str, ...]:
        return self.pools

    @property
    def requested_ips(self) -> tuple[str, ...]:
        """The IPs the spec names (egressIP, then egressIPs), without blanks or repeats."""
        out: list[str] = []
        for ip in (self.egress_ip, *self.egress_ips):
            if ip and ip not in out:
                out.append(ip)
        return tuple(out)

    @property
    def selects_nothing(self) -> bool:
        return self.pod_selector is None and self.namespace_selector is None

    def condition(self, type_: str) -> JSON | None:
        return next((c for c in self.conditions if c.get("type") == type_), None)


# -------------------------------------------------------------------------------- status

def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(status: dict[str, Any], type: str, status_value: str, reason: str,
                  message: str) -> bool:
    """Merge one condition into status["conditions"] by type; True when anything changed.
    lastTransitionTime moves only when the condition's status does (Kubernetes rule)."""
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = status["conditions"] = []
    for cond in conditions:
        if isinstance(cond, dict) and cond.get("type") == type:
            if (cond.get("status"), cond.get("reason"), cond.get("message")) == \
                    (status_value, reason, message):
                return False
            if cond.get("status") != status_value or not cond.get("lastTransitionTime"):
                cond["lastTransitionTime"] = now_rfc3339()
            cond.update(status=status_value, reason=reason, message=message)
            return True
    conditions.append({"type": type, "status": status_value,
                       "lastTransitionTime": now_rfc3339(), "reason": reason,
                       "message": message})
    return True


def write_status(raw: Any, name: str, mutate: Callable[[dict[str, Any]], bool],
                 resource: Resource = EGRESSES, attempts: int = 5) -> JSON | None:
    """Read-modify-write of one object's status: GET it, let mutate(status) change the
    status dict in place (returning whether it did), PUT `/status` with the
    resourceVersion read, and start over on 409 Conflict. Returns the object written, or
    None when mutate changed nothing. 404 and other API errors propagate (ApiException).
    `raw` is an `antrea_core.k8s.rawclient.RawClient`."""
    from kubernetes.client.exceptions import ApiException

    path = resource.path(None, name)
    for attempt in range(attempts):
        obj = raw.request("GET", path)
        status = obj.get("status")
        if not isinstance(status, dict):
            status = obj["status"] = {}
        if not mutate(status):
            return None
        try:
            return raw.request("PUT", path + "/status", body=obj)
        except ApiException as exc:
            if exc.status != 409 or attempt == attempts - 1:
                raise
            log.debug("status conflict kind=%s name=%s attempt=%d", resource.kind, name,
                      attempt + 1)
            time.sleep(0.05 * (attempt + 1))
    return None  # not reached


def parse_valid(parse: Callable[[Mapping[str, Any]], T], objs: Iterable[Mapping[str, Any]],
                logger: logging.Logger) -> list[T]:
    """`parse` (a `from_obj`) of every object; one that fails (the schema should have
    refused it) is logged with its name and the field, and skipped."""
    parsed: list[T] = []
    for obj in objs:
        try:
            parsed.append(parse(obj))
        except ValueError as exc:
            logger.warning("ignored %s name=%s error=%s", obj.get("kind") or "object",
                           (obj.get("metadata") or {}).get("name"), exc)
    return parsed
