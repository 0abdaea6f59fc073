"""Control-plane watch fan-out: a 10,000-member group and a 1-member patch to N agents.

Runs the real PolicyStore + ControlPlaneServer (TLS on 127.0.0.1, a static-token
authenticator instead of TokenReview) and N `ControllerWatch` clients in this process,
each for its own node, all in the group's span. Prints: time until every watcher holds
the new group, time until every watcher applied a one-member patch, a late joiner's
snapshot time, encode/decode costs, and the process RSS. Usage:

    .venv/bin/python bench/controlplane_watch.py [--members 10000] [--watchers 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from antrea_core.agent.controlplane.client import ControllerWatch
from antrea_core.apis import controlplane_codec as codec
from antrea_core.apis import controlplane_pb2 as pb
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    GroupMember,
    NetworkPolicy,
    PodReference,
    WatchEvent,
)
from antrea_core.controller.certificates import self_signed
from antrea_core.controller.server import ControlPlaneServer, Identity
from antrea_core.controller.store import PolicyStore

GROUP = "ag-bench"


class StaticTokens:
    """token "node-<i>" is node node-<i> (no API server in the benchmark)."""

    def authenticate(self, token: str) -> Identity | None:
        return Identity(f"system:node:{token}", ("system:nodes",), token)


class Counting:
    """A handler that remembers the size of the bench group and signals changes."""

    def __init__(self) -> None:
        self.size = 0
        self.changed = threading.Condition()

    def replace_all(self, policies: list[NetworkPolicy],
                    applied_to_groups: list[AppliedToGroup],
                    address_groups: list[AddressGroup]) -> None:
        with self.changed:
            self.size = sum(len(g.members) for g in address_groups if g.name == GROUP)
            self.changed.notify_all()

    def apply(self, event: WatchEvent) -> None:
        with self.changed:
            if event.patch is not None:
                self.size += len(event.patch.added) - len(event.patch.removed)
            elif isinstance(event.obj, AddressGroup):
                self.size = len(event.obj.members)
            self.changed.notify_all()

    def wait_size(self, size: int, timeout: float = 120) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: self.size == size, timeout):
                raise TimeoutError(f"group size {self.size}, expected {size}")
        return time.perf_counter()


def members(n: int) -> list[GroupMember]:
    return [GroupMember(PodReference("bench", f"pod-{i}"),
                        (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",), f"node-{i % 50}")
            for i in range(n)]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fan_out(store: PolicyStore, handlers: list[Counting], group: AddressGroup,
            span: frozenset[str]) -> tuple[float, float]:
    """(time until the first, time until the last watcher holds `group`)."""
    t0 = time.perf_counter()
    store.upsert(group, span)
    done = [h.wait_size(len(group.members)) for h in handlers]
    return min(done) - t0, max(done) - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--watchers", type=int, default=10)
    ap.add_argument("--patches", type=int, default=20)
    args = ap.parse_args()

    pool = members(args.members + args.patches + 1)
    big = AddressGroup(GROUP, frozenset(pool[:args.members]))
    nodes = [f"node-{i}" for i in range(args.watchers)]
    span = frozenset([*nodes, "late"])

    t = time.perf_counter()
    data = codec.group_bytes(big)
    enc_cold = time.perf_counter() - t
    t = time.perf_counter()
    codec.group_bytes(big)
    enc_warm = time.perf_counter() - t
    t = time.perf_counter()
    codec.address_group_from_pb(pb.AddressGroup.FromString(data))
    dec = time.perf_counter() - t
    print(f"group of {args.members} members: {len(data) / 1024:.0f} KiB on the wire; "
          f"encode {enc_cold * 1000:.0f} ms cold / {enc_warm * 1000:.0f} ms with cached "
          f"members; decode {dec * 1000:.0f} ms")

    store = PolicyStore()
    with tempfile.TemporaryDirectory(prefix="hC1-bench-") as tmp:
        cert = self_signed(Path(tmp), ["127.0.0.1"])
        server = ControlPlaneServer(store, StaticTokens(), (cert.cert_pem, cert.key_pem),
                                    "127.0.0.1:0")
        server.start()
        address = f"127.0.0.1:{server.port}"
        handlers = [Counting() for _ in nodes]
        watches = [ControllerWatch(address, cert.ca_pem, node, node, h,
                                   server_name="antrea.kube-system.svc")
                   for node, h in zip(nodes, handlers, strict=True)]
        try:
            for w in watches:
                w.start()
            for w in watches:
                if not w.wait_synced(60):
                    raise TimeoutError(f"{w.node_name} did not sync")
            first, last = fan_out(store, handlers, big, span)
            print(f"ADDED {args.members}-member group to {args.watchers} watchers: "
                  f"first {first * 1000:.0f} ms, all {last * 1000:.0f} ms")

            lat = []
            current = set(big.members)
            for i in range(args.patches):
                current.add(pool[args.members + i])
                lat.append(fan_out(store, handlers,
                                   AddressGroup(GROUP, frozenset(current)), span)[1])
            print(f"1-member patch to {args.watchers} watchers (diff of the "
                  f"{args.members}-member group included): median "
                  f"{statistics.median(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms "
                  f"over {args.patches} patches")

            late_handler = Counting()
            late = ControllerWatch(address, cert.ca_pem, "late", "late", late_handler,
                                   server_name="antrea.kube-system.svc")
            t = time.perf_counter()
            late.start()
            late_handler.wait_size(len(current))
            print(f"late joiner snapshot with the {len(current)}-member group: "
                  f"{(time.perf_counter() - t) * 1000:.0f} ms")
            late.stop()
            print(f"process RSS (server + {args.watchers + 1} clients): {rss_mb():.0f} MB")
        finally:
            for w in watches:
                w.stop()
            server.stop()


if __name__ == "__main__":
    main()
