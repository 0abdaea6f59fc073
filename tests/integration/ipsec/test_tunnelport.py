"""The encrypted tunnel port's device: created once, kept across agent restarts when it
matches, replaced when the node IP changed; one static FDB entry per peer."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from antrea_core.agent.podnet.netns import run_in_netns
from antrea_ipsec.tunnelport import DEVICE, DeviceSpec, EncryptedTunnelPort, peer_mac

pytestmark = pytest.mark.integration


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"antrea-hn-tp-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _details(netns: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-d", "link", "show", DEVICE],
                          capture_output=True, text=True, check=True).stdout


def test_device_is_converged_and_fdb_entries_follow_peers(netns: str) -> None:
    inside = f"/run/netns/{netns}"
    port = EncryptedTunnelPort(DeviceSpec(local_ip="10.9.0.1", mtu=1350))
    index = run_in_netns(inside, port.ensure)
    details = _details(netns)
    assert "vxlan id 1 local 10.9.0.1" in details and "dstport 4789" in details
    assert "nolearning" in details and "mtu 1350" in details
    assert run_in_netns(inside, port.ensure) == index  # a restarted agent keeps it

    run_in_netns(inside, lambda: port.set_peer("10.9.0.2"))
    run_in_netns(inside, lambda: port.set_peer("10.9.0.3"))
    run_in_netns(inside, lambda: port.set_peer("10.9.0.3"))  # idempotent
    assert run_in_netns(inside, port.peers) == {peer_mac("10.9.0.2"): "10.9.0.2",
                                                peer_mac("10.9.0.3"): "10.9.0.3"}
    fdb = subprocess.run(["bridge", "-n", netns, "fdb", "show", "dev", DEVICE],
                         capture_output=True, text=True, check=True).stdout
    assert f"{peer_mac('10.9.0.2')} dst 10.9.0.2 self permanent" in fdb
    run_in_netns(inside, lambda: port.remove_peer("10.9.0.2"))
    run_in_netns(inside, lambda: port.remove_peer("10.9.0.2"))  # already gone: fine
    assert run_in_netns(inside, port.peers) == {peer_mac("10.9.0.3"): "10.9.0.3"}

    # The node's transport IP changed: the device is replaced (and its FDB with it).
    moved = EncryptedTunnelPort(DeviceSpec(local_ip="10.9.0.5", mtu=1350))
    assert run_in_netns(inside, moved.ensure) != index
    assert "local 10.9.0.5" in _details(netns)
    assert run_in_netns(inside, moved.peers) == {}
