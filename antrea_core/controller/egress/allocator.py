"""Egress IP allocation from ExternalIPPools, as a pure function of the cluster seen plus
the allocator's memory of who holds which IP (no I/O: `controller.py` feeds it the
informers' caches and writes what it returns).

Every Egress names its IPs through requests: `externalIPPool` pairs with `egressIP`;
the i-th of `externalIPPools` pairs with the i-th of `egressIPs` (Antrea's multi-pool
form). For each request:

* an IP set by the user (or by an earlier allocation) must be one of the pool's
  allocatable IPs (else `IPOutOfRange`) and held by no other Egress of that pool (else
  `IPConflict`); when it is, it is reserved for the Egress;
* no IP: the lowest free IP of the pool is allocated and written to the spec
  (`PoolExhausted` when there is none, `PoolNotFound` when the pool does not exist — both
  retried on the next pass, which any pool or Egress change triggers).

Who wins an IP two Egresses name: the one that already held it in this process, then
one whose `IPAllocated` condition is True (after a restart: the status is the memory),
then the oldest. So nothing moves across restarts and a new claimant never evicts the
incumbent. An IP the controller allocated from a pool the Egress no longer names is
released, and a new one allocated from the new pool. An Egress without a pool is not
the controller's business (the user puts its IP on a Node).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from antrea_core.apis.egress import CONDITION_IP_ALLOCATED, Egress, ExternalIPPool

REASON_ALLOCATED = "Allocated"
REASON_OUT_OF_RANGE = "IPOutOfRange"
REASON_CONFLICT = "IPConflict"
REASON_EXHAUSTED = "PoolExhausted"
REASON_NOT_FOUND = "PoolNotFound"


@dataclass(frozen=True)
class Request:
    egress: str
    pool: str
    ip: str  # "" when none yet
    field: str  # where the IP lives: "spec.egressIP" or "spec.egressIPs[i]"
    index: int  # -1 for egressIP, else the position in egressIPs


@dataclass(frozen=True)
class Condition:
    status: str  # "True" / "False"
    reason: str
    message: str


@dataclass
class Result:
    """What the API must be told. `spec_ips`: Egress -> {field index (-1 = egressIP):
    IP to write}; `conditions`: Egress -> IPAllocated wanted; `usage`: pool -> (total,
    used). Each lists everything, changed or not; the writer skips what already holds."""
    spec_ips: dict[str, dict[int, str]] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)


def requests(egress: Egress, spec_pool: str, spec_pools: tuple[str, ...]) -> list[Request]:
    out = []
    if spec_pool:
        out.append(Request(egress.name, spec_pool, egress.egress_ip, "spec.egressIP", -1))
    for i, pool in enumerate(spec_pools):
        ip = egress.egress_ips[i] if i < len(egress.egress_ips) else ""
        out.append(Request(egress.name, pool, ip, f"spec.egressIPs[{i}]", i))
    return out


def egress_requests(egress: Egress, obj_spec: Mapping[str, object]) -> list[Request]:
    """The requests of one Egress; `obj_spec` is its raw spec (to tell the single-pool
    field from the list form, which `Egress.pools` merges)."""
    single = obj_spec.get("externalIPPool")
    many = obj_spec.get("externalIPPools")
    return requests(egress, single if isinstance(single, str) else "",
                    tuple(p for p in many if isinstance(p, str)) if isinstance(many, list)
                    else ())


class Allocator:
    """Holds, per pool, which Egress holds which IP; `compute` updates it."""

    def __init__(self) -> None:
        self.holders: dict[str, dict[str, str]] = {}  # pool -> ip -> egress name

    def held_by(self, egress: str) -> dict[str, str]:
        """pool -> ip for one Egress (for tests and logs)."""
        return {pool: ip for pool, ips in self.holders.items()
                for ip, name in ips.items() if name == egress}

    def compute(self, pools: Mapping[str, ExternalIPPool],
                egresses: Iterable[tuple[Egress, list[Request]]]) -> Result:
        result = Result()
        entries = [(e, reqs) for e, reqs in egresses if reqs]
        previous = self.holders
        holders: dict[str, dict[str, str]] = {name: {} for name in pools}
        outcome: dict[tuple[str, int], Condition] = {}

        def incumbent(e: Egress, r: Request) -> int:
            return 0 if previous.get(r.pool, {}).get(r.ip) == e.name else 1

        def allocated_before(e: Egress) -> int:
            cond = e.condition(CONDITION_IP_ALLOCATED)
            return 0 if cond is not None and cond.get("status") == "True" else 1

        # Pass 1: reserve the IPs the specs name, and the allocations written but not
        # seen back yet (pending), incumbents first.
        named: list[tuple[Egress, Request, bool]] = []
        to_allocate: list[tuple[Egress, Request]] = []
        for e, reqs in entries:
            for r in reqs:
                if r.ip:
                    named.append((e, r, False))
                    continue
                pending = next((ip for ip, name in previous.get(r.pool, {}).items()
                                if name == e.name), None)
                if pending is not None:
                    named.append((e, replace(r, ip=pending), True))
                else:
                    to_allocate.append((e, r))
        named.sort(key=lambda n: (incumbent(n[0], n[1]), allocated_before(n[0]),
                                  n[0].created, n[0].name, n[1].index))
        for e, r, pending in named:
            pool = pools.get(r.pool)
            if pool is None:
                outcome[(e.name, r.index)] = Condition(
                    "False", REASON_NOT_FOUND, f"ExternalIPPool {r.pool} not found")
                continue
            if not pool.contains(r.ip):
                if pending or self._moved_pool(previous, e.name, r):
                    to_allocate.append((e, replace(r, ip="")))  # ours: allocate anew
                    continue
                outcome[(e.name, r.index)] = Condition(
                    "False", REASON_OUT_OF_RANGE,
                    f"{r.field} {r.ip} is not in the range of ExternalIPPool {r.pool}")
                continue
            holder = holders[r.pool].get(r.ip)
            if holder is not None:
                if pending:
                    to_allocate.append((e, replace(r, ip="")))
                    continue
                outcome[(e.name, r.index)] = Condition(
                    "False", REASON_CONFLICT,
                    f"{r.field} {r.ip} of ExternalIPPool {r.pool} is already used by "
                    f"Egress {holder}")
                continue
            holders[r.pool][r.ip] = e.name
            if pending:
                result.spec_ips.setdefault(e.name, {})[r.index] = r.ip
            outcome[(e.name, r.index)] = Condition(
                "True", REASON_ALLOCATED, f"EgressIP {r.ip} is allocated from "
                                          f"ExternalIPPool {r.pool}")

        # Pass 2: allocate the lowest free IP, oldest Egress first.
        to_allocate.sort(key=lambda er: (er[0].created, er[0].name, er[1].index))
        for e, r in to_allocate:
            pool = pools.get(r.pool)
            if pool is None:
                outcome[(e.name, r.index)] = Condition(
                    "False", REASON_NOT_FOUND, f"ExternalIPPool {r.pool} not found")
                continue
            taken = holders[r.pool]
            ip = next((ip for ip in pool.ips() if ip not in taken), None)
            if ip is None:
                outcome[(e.name, r.index)] = Condition(
                    "False", REASON_EXHAUSTED,
                    f"ExternalIPPool {r.pool} has no free IP for {r.field}")
                continue
            taken[ip] = e.name
            result.spec_ips.setdefault(e.name, {})[r.index] = ip
            outcome[(e.name, r.index)] = Condition(
                "True", REASON_ALLOCATED, f"EgressIP {ip} is allocated from "
                                          f"ExternalIPPool {r.pool}")

        for e, reqs in entries:
            conds = [outcome[(e.name, r.index)] for r in reqs if (e.name, r.index) in outcome]
            failed = [c for c in conds if c.status != "True"]
            if failed:
                result.conditions[e.name] = failed[0]
            elif conds:
                result.conditions[e.name] = conds[0] if len(conds) == 1 else Condition(
                    "True", REASON_ALLOCATED, "; ".join(c.message for c in conds))
        for name, pool in pools.items():
            result.usage[name] = (pool.size(), len(holders[name]))
        self.holders = holders
        return result

    @staticmethod
    def _moved_pool(previous: Mapping[str, Mapping[str, str]], egress: str,
                    r: Request) -> bool:
        """True when this process allocated r.ip to the Egress from another pool."""
        return any(pool != r.pool and ips.get(r.ip) == egress
                   for pool, ips in previous.items())
