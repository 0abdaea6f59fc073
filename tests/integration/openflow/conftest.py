"""A sandboxed br-int (userspace OVS in a netns of its own) per test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from antrea_core.agent.openflow.connection import OFConnection
from antrea_lab.node.ovs import NodeOVS

BRIDGE = "br-int"
_counter = iter(range(1000))


@dataclass
class Sandbox:
    netns: str
    ovs: NodeOVS

    @property
    def mgmt_path(self) -> str:
        return str(self.ovs.run_dir / f"{BRIDGE}.mgmt")

    def connect(self, **kwargs: object) -> OFConnection:
        conn = OFConnection(self.mgmt_path, **kwargs)  # type: ignore[arg-type]
        conn.start(timeout=10)
        return conn

    def dump_flows(self, *args: str) -> list[dict[str, str]]:
        """`ovs-ofctl -O OpenFlow15 dump-flows br-int` as dicts (cookie, table, priority,
        match, actions)."""
        out = self.ovs.ofctl("-O", "OpenFlow15", "dump-flows", BRIDGE, *args).stdout
        return [parse_flow_line(line) for line in out.splitlines()[1:] if line.strip()]


_FLOW_LINE = re.compile(
    r"cookie=(?P<cookie>0x[0-9a-f]+), .*?table=(?P<table>\d+), .*?"
    r"priority=(?P<priority>\d+),?(?P<match>\S*) actions=(?P<actions>\S+)")


def parse_flow_line(line: str) -> dict[str, str]:
    m = _FLOW_LINE.search(line)
    assert m is not None, f"unparsed flow line: {line}"
    return m.groupdict()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    # A short base dir: unix socket paths (db.sock, br-int.mgmt) must stay < 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="h7of", dir="/tmp"))
    netns = f"antrea-h7-of{os.getpid() % 10000}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    ovs = NodeOVS(netns, base / "ovs")
    try:
        ovs.start()
        # protocols: the mgmt socket only speaks what the bridge allows (an empty column
        # allows OF1.0-1.5 on OVS 3.1; we pin 1.5). fail_mode=secure: no NORMAL flow.
        ovs.vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev",
                  "protocols=OpenFlow15", "fail_mode=secure")
        yield Sandbox(netns, ovs)
    finally:
        ovs.stop()
        subprocess.run(["ip", "netns", "delete", netns], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
