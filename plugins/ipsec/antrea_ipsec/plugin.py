"""The IPsec feature plugin: every tunnel packet between Nodes is encrypted (ESP).

Loaded when antrea-agent.conf sets ``trafficEncryptionMode: ipsec`` (the derived feature
"IPsec"); the pre-shared key comes from the environment variable ``ANTREA_IPSEC_PSK``,
which the DaemonSet fills from the Secret ``kube-system/antrea-ipsec`` (key ``psk``).

* `antrea_datapath_ready`: the kernel VXLAN device `antrea-ipsec0` on the bridge
  (`tunnelport`), the fail-closed iptables rules (`failclosed`), and this Node's charon
  (`charon`: adopted from the previous agent run or started; kept alive and configured
  by `keeper` once `antrea_agent_started` says every existing Node is known).
* `antrea_initial_flows`/`antrea_replay_flows`: tunnel traffic goes through the
  encrypted port, plaintext tunnel traffic is dropped (`flows`).
* `antrea_node_added`/`antrea_node_removed`: one FDB entry, one flow, one fail-closed
  rule pair and one IKEv2 connection per remote Node.
* `antrea_pod_mtu_limit`: pods get an MTU whose packets fit one ESP packet.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from antrea_core.agent.bridge.interface_store import InterfaceType
from antrea_core.plugins.hookspecs import hookimpl
from antrea_ipsec import flows
from antrea_ipsec.charon import CHARON, Charon, CharonConfig
from antrea_ipsec.failclosed import FailClosed
from antrea_ipsec.keeper import SAKeeper
from antrea_ipsec.sa import Peer, SAManager
from antrea_ipsec.tunnelport import DEVICE, DeviceSpec, EncryptedTunnelPort, pod_mtu_limit

log = logging.getLogger("antrea.agent.ipsec")

PSK_ENV = "ANTREA_IPSEC_PSK"
MIN_PSK_LENGTH = 16
# kernel-libipsec's TUN device: measured 1400 on strongSwan 5.9 (not configurable).
LIBIPSEC_TUN_MTU = 1400
CORE_TUNNEL_PORT = "antrea-tun0"


class Plugin:
    feature = flows.FEATURE

    def __init__(self) -> None:
        self.port: EncryptedTunnelPort | None = None
        self.failclosed: FailClosed | None = None
        self.keeper: SAKeeper | None = None
        self.flow_cfg: flows.IPsecFlowConfig | None = None
        self.local_ip = ""
        self.bridge: Any = None
        self._peers: dict[str, str] = {}  # node name → transport IP
        self._lock = threading.Lock()

    # -- configuration --------------------------------------------------------------------
    @hookimpl
    def antrea_validate_config(self, config: Any) -> list[str]:
        errors = []
        if config.ipsec.authentication_mode != "psk":
            errors.append("ipsec.authenticationMode: only psk is supported by this plugin "
                          "(cert is not implemented yet)")
        psk = os.environ.get(PSK_ENV, "")
        if len(psk) < MIN_PSK_LENGTH:
            errors.append(f"trafficEncryptionMode: ipsec needs a pre-shared key of at least "
                          f"{MIN_PSK_LENGTH} characters in the environment variable "
                          f"{PSK_ENV} (Secret kube-system/antrea-ipsec, key psk)")
        if not CHARON.exists() or shutil.which("iptables") is None:
            errors.append(f"trafficEncryptionMode: ipsec needs strongSwan's charon "
                          f"({CHARON}) and iptables: apt-get install strongswan-charon "
                          "strongswan-swanctl libcharon-extra-plugins "
                          "libstrongswan-standard-plugins iptables")
        return errors

    @hookimpl
    def antrea_pod_mtu_limit(self, config: Any, underlay_mtu: int) -> int:
        return pod_mtu_limit(underlay_mtu, LIBIPSEC_TUN_MTU)

    # -- datapath -------------------------------------------------------------------------
    @hookimpl
    def antrea_datapath_ready(self, context: Any) -> None:
        node = context.node
        ips = [ip for ip in node.ips if ":" not in ip]
        if not ips:
            raise RuntimeError(f"IPsec needs an IPv4 transport address; node {node.name} "
                               f"has {list(node.ips)}")
        self.local_ip = ips[0]
        ovs = context.ovs_bridge
        mtu = pod_mtu_limit(1500, LIBIPSEC_TUN_MTU)  # the device only carries pod frames
        self.port = EncryptedTunnelPort(DeviceSpec(local_ip=self.local_ip, mtu=mtu))
        self.port.ensure()
        ofport = ovs.ensure_system_port(DEVICE, InterfaceType.TUNNEL)
        plaintext = [r.ofport for r in ovs.interfaces() if r.name == CORE_TUNNEL_PORT]
        self.flow_cfg = flows.IPsecFlowConfig(
            port_ofport=ofport, plaintext_ofport=plaintext[0] if plaintext else None)
        self.failclosed = FailClosed(None)
        self.failclosed.install()
        state_dir = Path(context.state_dir or "/var/run/antrea") / "ipsec"
        charon = Charon(CharonConfig(netns="", state_dir=state_dir))
        self.keeper = SAKeeper(charon, SAManager(charon.cfg.vici_socket, context.node_name),
                               os.environ[PSK_ENV])
        self.keeper.start_charon()
        log.info("IPsec ready port=%s ofport=%d local=%s charon=%s adopted=%s", DEVICE,
                 ofport, self.local_ip, charon.pid, self.keeper.adopted)

    @hookimpl
    def antrea_initial_flows(self, layout: Any, context: Any) -> list[Any]:
        assert self.flow_cfg is not None
        self.bridge = context.bridge
        return flows.initial_flows(self.flow_cfg)

    @hookimpl
    def antrea_replay_flows(self, layout: Any, context: Any) -> list[Any]:
        assert self.flow_cfg is not None
        with self._lock:
            ips = list(self._peers.values())
        return [f for ip in ips for f in flows.peer_flows(self.flow_cfg, ip)]

    # -- peers ----------------------------------------------------------------------------
    @hookimpl
    def antrea_node_added(self, node: Any, context: Any) -> None:
        ips = [ip for ip in node.ips if ":" not in ip]
        if not ips or self.port is None:
            return
        ip = ips[0]
        with self._lock:
            old = self._peers.get(node.name)
            if old is not None and old != ip:
                self._remove(old)
            self.port.set_peer(ip)
            assert self.failclosed is not None and self.flow_cfg is not None
            self.failclosed.add_peer(ip)
            context.bridge.install(flows.peer_flows(self.flow_cfg, ip), flows.FEATURE)
            self._peers[node.name] = ip
        assert self.keeper is not None
        self.keeper.set_peer(Peer(node.name, self.local_ip, ip))

    @hookimpl
    def antrea_node_removed(self, node: Any, context: Any) -> None:
        with self._lock:
            ip = self._peers.pop(node.name, None)
            if ip is not None:
                self._remove(ip)
        if self.keeper is not None and ip is not None:
            self.keeper.remove_peer(Peer(node.name, self.local_ip, ip))

    def _remove(self, ip: str) -> None:
        assert self.port and self.failclosed and self.flow_cfg
        if self.bridge is not None:
            self.bridge.delete(flows.peer_flows(self.flow_cfg, ip), flows.FEATURE)
        self.port.remove_peer(ip)
        self.failclosed.remove_peer(ip)

    @hookimpl
    def antrea_agent_started(self, context: Any) -> None:
        """Every existing Node has been added: what an earlier run left for Nodes deleted
        since (FDB entries, flows of the previous cookie round, charon connections) goes."""
        if self.port is None or self.keeper is None:
            return
        with self._lock:
            current = set(self._peers.values())
        for mac, ip in self.port.peers().items():
            if ip not in current:
                self.port.remove_peer(ip)
                log.info("stale IPsec peer removed mac=%s ip=%s", mac, ip)
        assert self.failclosed is not None
        for ip in self.failclosed.peers() - current:
            self.failclosed.remove_peer(ip)
            log.info("stale IPsec fail-closed rules removed ip=%s", ip)
        context.bridge.delete_stale_rounds(flows.FEATURE)
        self.keeper.start()

    @hookimpl
    def antrea_agent_stopping(self, context: Any) -> None:
        # charon, the device, the rules and the flows stay, as the datapath does: the next
        # agent adopts charon with its SAs, so tunnel traffic does not wait for it.
        if self.keeper is not None:
            self.keeper.stop(stop_charon=False)
