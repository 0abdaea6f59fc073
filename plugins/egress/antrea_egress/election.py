"""Which Node holds an Egress IP: liveness from Leases, ownership by rendezvous hashing.

Every agent renews a Lease of its own (`antrea-agent-egress-<node>` in the agents'
Namespace) and watches the others'. A Node is alive while this agent has seen its Lease
renewed within the Lease's duration, timed by this agent's own clock: agents never
compare each other's clocks, as Kubernetes' leader election does not. An agent that
stops cleanly deletes its Lease, so its IPs move at once; one that dies loses them
when its Lease runs out.

Each Egress IP then goes to the eligible live Node with the highest hash of (IP, Node)
(rendezvous or highest-random-weight hashing). Every agent computes the same answer from
the same view, without talking to the others; a Node joining or leaving moves only the
IPs it wins or held, and IPs spread evenly over Nodes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from antrea_core.k8s.rawclient import RawClient, is_status
from antrea_core.k8s.resources import LEASES

log = logging.getLogger("antrea.agent.egress.election")

LEASE_PREFIX = "antrea-agent-egress-"
LEASE_LABEL = {"app": "antrea", "component": "antrea-agent-egress"}


def lease_name(node: str) -> str:
    return LEASE_PREFIX + node


def _weight(ip: str, node: str) -> tuple[bytes, str]:
    return hashlib.sha256(f"{ip}\x00{node}".encode()).digest(), node


def owner(ip: str, candidates: Iterable[str]) -> str | None:
    """The candidate Node with the highest weight for `ip`; None without candidates."""
    return max(candidates, key=lambda node: _weight(ip, node), default=None)


def ranked(ip: str, candidates: Iterable[str]) -> list[str]:
    """Candidates in order of preference for `ip` (the owner first)."""
    return sorted(candidates, key=lambda node: _weight(ip, node), reverse=True)


def assign(ips: Mapping[str, Iterable[str]], capacity: Callable[[str], int]
           ) -> dict[str, str]:
    """Owners of many IPs (IP -> its eligible Nodes) when a Node holds at most
    `capacity(node)` of them (maxEgressIPsPerNode): IPs in address order each take their
    most preferred Node that still has room. Every agent walks the same order over the
    same view, so all agree; without limits it is `owner` for each IP."""
    load: dict[str, int] = {}
    owners: dict[str, str] = {}
    for ip in sorted(ips, key=ipaddress.ip_address):
        for node in ranked(ip, ips[ip]):
            if load.get(node, 0) < capacity(node):
                owners[ip] = node
                load[node] = load.get(node, 0) + 1
                break
    return owners


class Liveness:
    """The Nodes whose Lease this agent saw renewed recently. Fed by a Lease informer;
    `alive()` is evaluated against the monotonic clock at the time of the call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # node -> (renewTime as written, lease duration, when we saw that renewal)
        self._seen: dict[str, tuple[str, float, float]] = {}

    def observe(self, lease: dict[str, Any]) -> None:
        name = (lease.get("metadata") or {}).get("name", "")
        if not name.startswith(LEASE_PREFIX):
            return
        spec = lease.get("spec") or {}
        node = spec.get("holderIdentity") or name[len(LEASE_PREFIX):]
        renew = str(spec.get("renewTime") or spec.get("acquireTime") or "")
        duration = float(spec.get("leaseDurationSeconds") or 0)
        with self._lock:
            old = self._seen.get(node)
            if old is None or old[0] != renew:
                self._seen[node] = (renew, duration, self._clock())
            else:
                self._seen[node] = (renew, duration, old[2])

    def forget(self, lease: dict[str, Any]) -> None:
        name = (lease.get("metadata") or {}).get("name", "")
        node = (lease.get("spec") or {}).get("holderIdentity") or name[len(LEASE_PREFIX):]
        with self._lock:
            self._seen.pop(node, None)

    def alive(self) -> set[str]:
        now = self._clock()
        with self._lock:
            return {node for node, (_renew, duration, seen) in self._seen.items()
                    if now - seen < duration}

    def next_expiry(self) -> float | None:
        """Seconds until the next live Node expires (when to look again), None if none."""
        now = self._clock()
        with self._lock:
            left = [seen + duration - now for _r, duration, seen in self._seen.values()
                    if now - seen < duration]
        return min(left) if left else None


def _micro_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseHeartbeat:
    """Keeps this Node's Lease renewed every `renew_seconds` from a thread of its own."""

    def __init__(self, raw: RawClient, node: str, namespace: str, duration: int,
                 renew_seconds: float) -> None:
        self.raw = raw
        self.node = node
        self.namespace = namespace
        self.duration = duration
        self.renew_seconds = renew_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="antrea-egress-lease",
                                        daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; `release` deletes the Lease so that other Nodes take over now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if release:
            try:
                self.raw.delete(LEASES, lease_name(self.node), self.namespace)
            except Exception as exc:  # the API may be gone as well: the Lease expires
                if not is_status(exc, 404):
                    log.warning("cannot release the egress lease error=%s", exc)

    def renew(self) -> None:
        now = _micro_time()
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": lease_name(self.node), "namespace": self.namespace,
                             "labels": LEASE_LABEL},
                "spec": {"holderIdentity": self.node, "leaseDurationSeconds": self.duration,
                         "renewTime": now}}
        try:
            self.raw.patch(LEASES, lease_name(self.node), {"spec": body["spec"]},
                           self.namespace)
        except Exception as exc:
            if not is_status(exc, 404):
                raise
            body["spec"]["acquireTime"] = now
            self.raw.create(LEASES, body, self.namespace)
        self.renewals += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.renew()
            except Exception as exc:
                log.warning("egress lease renewal failed error=%s", exc)
            self._stop.wait(self.renew_seconds)
