"""The IPsec plugin's pure parts: flows, MTU, peer MACs, config checks, the SA keeper."""

from __future__ import annotations

import pytest
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow import registers as regs
from antrea_core.agent.openflow.podnetwork import GLOBAL_VIRTUAL_MAC
from antrea_core.config.agent import AgentConfig
from antrea_ipsec import flows
from antrea_ipsec.charon import CharonError
from antrea_ipsec.keeper import SAKeeper
from antrea_ipsec.plugin import PSK_ENV, Plugin
from antrea_ipsec.sa import IPsecError, Peer
from antrea_ipsec.tunnelport import peer_mac, pod_mtu_limit

pytestmark = pytest.mark.unit

CFG = flows.IPsecFlowConfig(port_ofport=7, plaintext_ofport=1)


def test_peer_mac_is_local_unicast_and_names_the_ip():
    mac = peer_mac("192.168.77.12")
    assert mac == "aa:ad:c0:a8:4d:0c"
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast
    assert peer_mac("192.168.77.13") != mac


def test_pod_mtu_fits_one_esp_packet():
    # ipsec0 carries 1400; the VXLAN frame around the pod packet needs 50 of them.
    assert pod_mtu_limit(1500, 1400) == 1350
    # A smaller underlay: the ESP-in-UDP packet (85 bytes worst case) must still fit.
    assert pod_mtu_limit(1450, 1400) == 1450 - 85 - 50


def test_peer_flow_rewrites_the_virtual_mac_and_outputs_to_the_encrypted_port():
    [flow] = flows.peer_flows(CFG, "192.168.77.12")
    assert flow.table == "L2ForwardingCalc"
    assert flow.match == {"eth_dst": GLOBAL_VIRTUAL_MAC, "tun_ipv4_dst": "192.168.77.12"}
    fields = {a.key: a.value for a in flow.actions if isinstance(a, ofpp.OFPActionSetField)}
    assert fields["eth_dst"] == peer_mac("192.168.77.12")
    assert fields[regs.TARGET_OFPORT.reg] == 7
    assert flows.peer_flows(CFG, "fd00::2") == []  # IPv6 transport: not supported yet


def test_initial_flows_admit_the_encrypted_port_and_drop_plaintext():
    initial = flows.initial_flows(CFG)
    by_match = {(f.table, tuple(sorted(f.match.items()))): f for f in initial}
    admit = by_match[("Classifier", (("in_port", 7),))]
    assert admit.goto == "ConntrackZone" and admit.actions
    plaintext = by_match[("Classifier", (("in_port", 1),))]
    assert plaintext.goto is None and not plaintext.actions  # drop
    assert plaintext.priority > admit.priority
    no_peer = by_match[("L2ForwardingCalc", (("eth_dst", GLOBAL_VIRTUAL_MAC),))]
    assert no_peer.goto is None and not no_peer.actions
    assert flows.peer_flows(CFG, "10.0.0.2")[0].priority > no_peer.priority
    without_tunnel = flows.initial_flows(flows.IPsecFlowConfig(7, None))
    assert len(without_tunnel) == len(initial) - 1


def test_config_check_names_the_psk_variable_and_the_auth_mode(monkeypatch):
    monkeypatch.delenv(PSK_ENV, raising=False)
    config = AgentConfig.model_validate({"trafficEncryptionMode": "ipsec"})
    errors = Plugin().antrea_validate_config(config)
    assert any(PSK_ENV in e and "antrea-ipsec" in e for e in errors)
    monkeypatch.setenv(PSK_ENV, "short")
    assert any(PSK_ENV in e for e in Plugin().antrea_validate_config(config))
    monkeypatch.setenv(PSK_ENV, "x" * 32)
    assert not any(PSK_ENV in e for e in Plugin().antrea_validate_config(config))
    cert = AgentConfig.model_validate({"trafficEncryptionMode": "ipsec",
                                       "ipsec": {"authenticationMode": "cert"},
                                       "featureGates": {"IPsecCertAuth": True}})
    assert any(e.startswith("ipsec.authenticationMode") for e in
               Plugin().antrea_validate_config(cert))


class FakeCharon:
    def __init__(self, left_running: bool = False) -> None:
        self.alive = left_running
        self.left_running = left_running
        self.starts = 0
        self.fail_next = False

    def adopt(self) -> int | None:
        return 99 if self.left_running and self.alive else None

    def running(self) -> bool:
        return self.alive

    def start(self, replace_stale: bool = False) -> int:
        if self.fail_next:
            self.fail_next = False
            raise CharonError("cannot start")
        self.alive = True
        self.starts += 1
        return 100 + self.starts

    def stop(self) -> None:
        self.alive = False


class FakeSAs:
    def __init__(self, charon: FakeCharon) -> None:
        self.charon = charon
        self.conns: dict[str, Peer] = {}
        self.psk: str | None = None
        self.loads = 0

    def _up(self) -> None:
        if not self.charon.alive:
            raise IPsecError("VICI: connection refused")

    def load_psk(self, psk: str) -> None:
        self._up()
        self.psk = psk

    def load_peer(self, peer: Peer) -> None:
        self._up()
        self.loads += 1
        self.conns[peer.conn_name] = peer

    def unload_conn(self, name: str) -> None:
        self._up()
        self.conns.pop(name)

    def connections(self) -> list[str]:
        self._up()
        return list(self.conns)


def test_keeper_loads_wanted_peers_and_reloads_everything_after_charon_dies():
    charon = FakeCharon()
    sas = FakeSAs(charon)
    keeper = SAKeeper(charon, sas, "k" * 32)  # type: ignore[arg-type]
    keeper.start_charon()
    assert charon.starts == 1 and not keeper.adopted
    node2, node3 = Peer("node2", "10.0.0.1", "10.0.0.2"), Peer("node3", "10.0.0.1", "10.0.0.3")
    keeper.set_peer(node2)
    keeper.set_peer(node3)
    keeper.sync()
    assert sas.psk == "k" * 32
    assert sorted(sas.conns) == ["antrea-node2", "antrea-node3"]
    # A node goes, another changes its IP.
    keeper.remove_peer(node3)
    moved = Peer("node2", "10.0.0.1", "10.0.0.22")
    keeper.set_peer(moved)
    keeper.sync()
    assert sas.conns == {"antrea-node2": moved}
    # charon dies: the new one has neither the PSK nor the connections.
    charon.alive = False
    sas.conns.clear()
    sas.psk = None
    keeper.sync()
    assert charon.starts == 2 and sas.psk and list(sas.conns) == ["antrea-node2"]
    # A start failure is raised to the loop (which retries) and retried on the next pass.
    charon.alive = False
    charon.fail_next = True
    with pytest.raises(CharonError):
        keeper.sync()
    keeper.sync()
    assert charon.alive and list(sas.conns) == ["antrea-node2"]


def test_a_restarted_agent_adopts_charon_and_drops_only_deleted_nodes():
    charon = FakeCharon(left_running=True)
    sas = FakeSAs(charon)
    kept, deleted = Peer("node2", "10.0.0.1", "10.0.0.2"), Peer("node3", "10.0.0.1", "10.0.0.3")
    sas.conns = {kept.conn_name: kept, deleted.conn_name: deleted, "not-ours": kept}
    keeper = SAKeeper(charon, sas, "k" * 32)  # type: ignore[arg-type]
    keeper.start_charon()
    assert keeper.adopted and charon.starts == 0  # no restart: the SAs stay up
    keeper.set_peer(kept)  # the Node events of the new run
    keeper.sync()
    assert sorted(sas.conns) == ["antrea-node2", "not-ours"]
    assert sas.loads == 1  # reloaded once (charon keeps the SA of an equal connection)
    keeper.sync()
    assert sas.loads == 1
