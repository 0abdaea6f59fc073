"""One 3-node antrea lab per test module, holding the model's 9 pods."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest

from antrea_lab import cluster
from antrea_lab.labdir import LabDir
from netpol import model
from netpol.harness import NetpolCluster
from netpol.model import POD_KEYS
from netpol.reachability import Reachability

# Lab names are lower-case only (netns antrea-<lab>-…).
LAB_NAME = f"netpol{os.getpid() % 10000}"
# A fixed port when set (parallel labs on one machine), else the lab picks a free one.
API_PORT = int(os.environ["NETPOL_LAB_API_PORT"]) if os.environ.get("NETPOL_LAB_API_PORT") \
    else None


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _show(request: pytest.FixtureRequest, figures: list[str]) -> None:
    """Print the measured timings on the terminal even when output is captured."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in figures:
            reporter.write_line(f"[netpol] {line}")


@pytest.fixture(scope="module")
def netpol_cluster(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetpolCluster]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, Open vSwitch)")
    lab = LabDir(LAB_NAME, root=tmp_path_factory.mktemp("netpol-lab"))
    harness: NetpolCluster | None = None
    try:
        start = time.monotonic()
        cluster.up(lab, len(model.NODES), cni="antrea", api_port=API_PORT, progress=_say)
        harness = NetpolCluster(lab)
        up = time.monotonic()
        harness.create_model()
        running = time.monotonic()
        # Echo servers start after the pods turn Running; a lab that never connects
        # everything makes every policy case meaningless, so fail here with the diff.
        harness.expect(Reachability(POD_KEYS), "model warm-up (no policy)", deadline=60.0)
        harness.note(f"netpol lab: up {up - start:.1f}s, 9 pods running "
                     f"{running - up:.1f}s, all connected {time.monotonic() - running:.1f}s "
                     "later")
        yield harness
    finally:
        if harness is not None:
            harness.close()
            _show(request, harness.figures)
        cluster.down(lab, progress=_say)


@pytest.fixture
def np(netpol_cluster: NetpolCluster) -> Iterator[NetpolCluster]:
    """The shared cluster, reset to the bare model after the case (policies deleted,
    labels restored, everything connected again) so cases stay independent."""
    yield netpol_cluster
    netpol_cluster.reset()
