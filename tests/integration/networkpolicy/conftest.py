"""One sandboxed node (module scope) with three pods for the NetworkPolicy tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from np_node import PolicyNode


@pytest.fixture(scope="module")
def node() -> Iterator[PolicyNode]:
    base = Path(tempfile.mkdtemp(prefix="hDnp", dir="/tmp"))  # short socket paths
    node = PolicyNode(base)
    try:
        node.start()
        node.add_pod("client", 2)
        node.add_pod("server", 3)
        node.add_pod("other", 4)
        yield node
    finally:
        node.close()
        shutil.rmtree(base, ignore_errors=True)
