"""The sandboxed agent node of antctl's agent-mode tests (module-scoped: OVS start-up
is slow on a shared machine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from antctl_node import AgentNode, start_agent_node


@pytest.fixture(scope="module")
def agent_node() -> Iterator[AgentNode]:
    yield from start_agent_node()
