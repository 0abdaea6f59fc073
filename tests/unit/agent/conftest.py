"""Fixtures of the agent unit tests (fakes in agent_fakes)."""

from __future__ import annotations

import pytest
from agent_fakes import Rig, make_rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()
