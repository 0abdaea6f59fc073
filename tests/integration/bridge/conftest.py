"""A sandboxed node for bridge tests: a netns of our own with a userspace OVS inside."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from antrea_core.agent.bridge.ovsdb import OVSDB
from antrea_lab.node import netns
from antrea_lab.node.ovs import NodeOVS

PREFIX = f"antrea-h8-{os.getpid() % 10000}"
_seq = itertools.count()


def ns_name(what: str) -> str:
    return f"{PREFIX}-{what}{next(_seq)}"


@dataclass
class Node:
    netns: str
    ovs: NodeOVS
    ovsdb: OVSDB

    def ip(self, *args: str) -> str:
        return subprocess.run(["ip", "-n", self.netns, *args], capture_output=True,
                              text=True, check=True).stdout

    def ip_json(self, *args: str) -> list[dict]:
        return json.loads(self.ip("-j", *args) or "[]")

    def column(self, table: str, record: str, column: str):
        """A column read back with ovs-vsctl (JSON), maps as dicts."""
        out = self.ovs.vsctl("--format=json", f"--columns={column}", "list", table,
                             record).stdout
        return from_ovsdb_json(json.loads(out)["data"][0][0])


def from_ovsdb_json(value):
    if isinstance(value, list) and value and value[0] == "map":
        return {k: from_ovsdb_json(v) for k, v in value[1]}
    if isinstance(value, list) and value and value[0] == "set":
        return [from_ovsdb_json(v) for v in value[1]]
    if isinstance(value, list) and value and value[0] == "uuid":
        return value[1]
    return value


@pytest.fixture
def created_netns() -> Iterator[list[str]]:
    """Names appended here are deleted at teardown, if this test created them."""
    names: list[str] = []
    yield names
    for name in names:
        netns.delete(name)


@pytest.fixture
def make_netns(created_netns: list[str]) -> Callable[[str], str]:
    """Create a fresh netns named antrea-h8-<pid>-<what><n>; deleted at teardown."""

    def make(what: str) -> str:
        name = ns_name(what)
        if netns.ensure(name):
            created_netns.append(name)
        return name

    return make


@pytest.fixture
def node(tmp_path: Path, make_netns: Callable[[str], str]) -> Iterator[Node]:
    name = make_netns("node")
    ovs = NodeOVS(name, tmp_path / "ovs")
    try:
        ovs.start()
        db = OVSDB(ovs.db_sock)
        try:
            yield Node(name, ovs, db)
        finally:
            db.close()
    finally:
        ovs.stop()
