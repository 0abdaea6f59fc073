"""Clear stale conntrack entries of removed endpoints (UDP and SCTP).

A UDP "connection" to a Service lives as long as the client keeps sending; after its
endpoint is gone the client would keep being DNAT-ed to a dead address. So would an
SCTP association that retries from the same ports (where conntrack tracks SCTP; the
userspace datapath translates SCTP without it, see `serviceflows`). TCP needs nothing:
the client sees its connection fail and opens a new one, which is a new entry.

The userspace datapath's conntrack is reached through ovs-vswitchd's `dpctl/*`
commands: dump the zone, pick the entries whose reply comes from a removed endpoint,
flush each by its original tuple (the userspace tracker flushes reliably only by the
pre-NAT tuple).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("antrea.agent.proxy.conntrack")

_ENTRY = re.compile(
    r"^(?P<proto>\w+),orig=\(src=(?P<osrc>[^,]+),dst=(?P<odst>[^,]+),sport=(?P<osport>\d+),"
    r"dport=(?P<odport>\d+)\),reply=\(src=(?P<rsrc>[^,]+),dst=[^,]+,sport=(?P<rsport>\d+),")

Runner = Callable[[Sequence[str]], str]


IP_PROTO = {"udp": 17, "sctp": 132}


@dataclass(frozen=True)
class OrigTuple:
    proto: str
    src: str
    dst: str
    sport: int
    dport: int

    def flush_arg(self) -> str:
        return (f"ct_nw_src={self.src},ct_nw_dst={self.dst},"
                f"ct_nw_proto={IP_PROTO[self.proto]},"
                f"ct_tp_src={self.sport},ct_tp_dst={self.dport}")


def stale_entries(dump: str, protocol: str, endpoints: Iterable[tuple[str, int]]
                  ) -> list[OrigTuple]:
    """Original tuples of `protocol` entries answered by one of `endpoints` (ip, port)."""
    proto = protocol.lower()
    gone = set(endpoints)
    out = []
    for line in dump.splitlines():
        m = _ENTRY.match(line.strip())
        if m is None or m["proto"] != proto:
            continue
        if (m["rsrc"], int(m["rsport"])) in gone:
            out.append(OrigTuple(proto, m["osrc"], m["odst"], int(m["osport"]),
                                 int(m["odport"])))
    return out


def appctl_runner(ovs_run_dir: str) -> Runner:
    """ovs-appctl against the vswitchd of `ovs_run_dir`: its fixed-name control socket
    when it has one (``--unixctl``, as the lab starts it), else the pid-named default."""
    fixed = Path(ovs_run_dir) / "ovs-vswitchd.ctl"

    def run(args: Sequence[str]) -> str:
        target = ["-t", str(fixed)] if fixed.exists() else []
        proc = subprocess.run(["ovs-appctl", *target, *args], capture_output=True, text=True,
                              timeout=10, env={**os.environ, "OVS_RUNDIR": ovs_run_dir})
        if proc.returncode != 0:
            raise RuntimeError(f"ovs-appctl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout
    return run


def flush_endpoints(run: Runner, zone: int, protocol: str,
                    endpoints: Iterable[tuple[str, int]]) -> int:
    """Flush the `protocol` entries of `zone` answered by `endpoints`; returns how
    many."""
    endpoints = list(endpoints)
    if not endpoints:
        return 0
    dump = run(["dpctl/dump-conntrack", f"zone={zone}"])
    entries = stale_entries(dump, protocol, endpoints)
    for entry in entries:
        run(["dpctl/flush-conntrack", f"zone={zone}", entry.flush_arg()])
    if entries:
        log.info("stale conntrack entries flushed protocol=%s count=%d endpoints=%s",
                 protocol, len(entries), ",".join(f"{ip}:{port}" for ip, port in endpoints))
    return len(entries)
