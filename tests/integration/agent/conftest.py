"""Fixtures of the agent integration tests (the sandbox node lives in agent_sandbox)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_sandbox import Sandbox, make_sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    yield from make_sandbox(tmp_path)
