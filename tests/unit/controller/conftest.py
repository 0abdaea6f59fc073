from __future__ import annotations

import pytest
from netpol_objects import RecordingStore

from antrea_core.controller.networkpolicy import NetworkPolicyController


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def ctl(store: RecordingStore) -> NetworkPolicyController:
    return NetworkPolicyController(store)
