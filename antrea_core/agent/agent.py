"""The antrea-agent daemon object: brings pod networking up on this node and serves CNI.

`Agent.start` in order (each step idempotent, so a restarted agent converges without
disturbing running pods):

1. wait for this Node's podCIDRs (ClusterView) and load IPAM state for them;
2. connect to OVSDB; ensure the bridge, the gateway port (MTU = pod MTU, first address
   of each podCIDR) and, when pods may be tunnelled, the tunnel port;
3. rebuild the interface store from OVSDB;
4. build the pod flow installer (required: see podflows) and the NetworkPolicy
   enforcement (its flows from a previous run stay until the controller's snapshot);
   install feature plugins' ``antrea_initial_flows`` (see pluginflows);
5. reconcile: release ports and IPs of pods deleted while the agent was down; reinstall
   flows and announce ``antrea_pod_added`` for the surviving pods;
6. start the CNI server (it first replays DELs queued while no agent listened), the
   query API for antctl, and — in the background — the controller's policy watch;
7. install the CNI configuration and binary, so kubelet only sees the network as ready
   once an agent answers;
8. ``antrea_agent_started``.

`stop` leaves the datapath as it is (ports, flows, addresses): pods keep running while
the agent restarts.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from antrea_core.agent import cniconfig, hostnet, pluginflows
from antrea_core.agent.apiserver import AgentQueryServer, default_socket_path
from antrea_core.agent.bridge.interface_store import InterfaceConfig, InterfaceStore
from antrea_core.agent.bridge.lifecycle import OVSBridge, attach_uplink, ensure_bridge
from antrea_core.agent.bridge.ovsdb import OVSDB
from antrea_core.agent.cniserver.server import CNIServer
from antrea_core.agent.controlplane.discovery import DiscoveryError, start_watch
from antrea_core.agent.ipam.allocator import NodeIPAM
from antrea_core.agent.mtu import limited, pod_mtu, transport_is_ipv6, tunnel_overhead
from antrea_core.agent.networkpolicy import agentplugin as networkpolicy
from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.agent.networkpolicy.dpflush import DatapathFlusher
from antrea_core.agent.nodeinfo import ClusterView
from antrea_core.agent.noderoute import NodeRouteController, RemoteNodeFlows, RoutePolicy
from antrea_core.agent.openflow.podnetwork import gateway_ips
from antrea_core.agent.podconfigurator import (
    PodConfigurator,
    PodNetworkSettings,
    StepFailed,
    call_hook,
)
from antrea_core.agent.podflows import (
    AgentRuntime,
    FlowInstallerFactory,
    FlowInstallerUnavailable,
    PodFlowInstaller,
)
from antrea_core.agent.podnet.interface import PodInterfaces
from antrea_core.agent.reconcile import ReconcileResult, reconcile_pods
from antrea_core.agent.snat import PodSNAT
from antrea_core.plugins.context import AgentContext, NodeInfo

log = logging.getLogger("antrea.agent")

TUNNEL_PORT_NAME = "antrea-tun0"
UPLINK_BRIDGE = "br-phy"  # userspace datapath only: holds the transport interface
OVSDB_SOCKET = "db.sock"
IPAM_SUBDIR = "ipam"


class AgentError(RuntimeError):
    """The agent could not start; the message says which step and why."""


@dataclass(frozen=True)
class AgentOptions:
    """Per-run settings that are not in antrea-agent.conf (command line)."""

    node_name: str
    state_dir: Path  # IPAM allocations live under it; must survive agent restarts
    cni_conf_dir: Path | None = None  # None: do not install the CNI configuration
    cni_bin_dir: Path | None = None  # None: do not install the CNI binary
    cni_executable: Path | None = None  # None: antrea-cni of this installation
    host_netns: str | None = None  # netns path of the node's devices; None: our own
    node_timeout: float | None = None  # None: wait for a podCIDR until stopped
    cni_workers: int = 8


class Agent:
    def __init__(self, config: Any, plugins: Any, layout: Any, cluster: ClusterView,
                 flow_installer_factory: FlowInstallerFactory | None,
                 options: AgentOptions) -> None:
        if flow_installer_factory is None:
            # Refuse here, before touching the node: ports without flows would look
            # attached and carry nothing.
            raise FlowInstallerUnavailable(
                "no pod flow installer is available, so pods cannot be networked")
        self.config = config
        self.plugins = plugins
        self.layout = layout
        self.cluster = cluster
        self.flow_installer_factory = flow_installer_factory
        self.options = options
        self.context = AgentContext(node_name=options.node_name, config=config,
                                    layout=layout, kube_api=getattr(cluster, "api", None),
                                    state_dir=options.state_dir)
        self.store = InterfaceStore()
        self.node: NodeInfo | None = None
        self.ipam: NodeIPAM | None = None
        self.ovsdb: OVSDB | None = None
        self.bridge: OVSBridge | None = None
        self.gateway: InterfaceConfig | None = None
        self.tunnel: InterfaceConfig | None = None
        self.pod_mtu = 0
        self.flows: PodFlowInstaller | None = None
        self.configurator: PodConfigurator | None = None
        self.cni_server: CNIServer | None = None
        self.reconciled: ReconcileResult | None = None
        self.veths = PodInterfaces(options.host_netns)
        self.node_routes: NodeRouteController | None = None
        self.snat: PodSNAT | None = None
        # NetworkPolicy enforcement; `network_policy.handler` is what the controller
        # watch feeds. Built with the flow installer, before pods are reconciled.
        self.network_policy: NetworkPolicyController | None = None
        self.policy_watch: Any = None  # ControllerWatch, once the controller is found
        self.query_server: AgentQueryServer | None = None
        self._stop = threading.Event()

    @property
    def pm(self) -> Any:
        return self.plugins.manager

    # -- start --------------------------------------------------------------------------
    def start(self, stop: threading.Event | None = None) -> None:
        try:
            self._start(stop)
        except BaseException:
            self._close()
            raise

    def _start(self, stop: threading.Event | None) -> None:
        cfg = self.config
        if stop is not None:
            self._stop = stop
        self.node = self.cluster.wait_for_node(stop, self.options.node_timeout)
        self.context.node = self.node
        self.ipam = NodeIPAM(self.node.pod_cidrs, self.options.state_dir / IPAM_SUBDIR)
        self.pod_mtu = self._pod_mtu()

        self.ovsdb = OVSDB(Path(cfg.ovs_run_dir) / OVSDB_SOCKET)
        self.bridge = ensure_bridge(self.ovsdb, cfg.ovs_bridge, cfg.ovs_datapath_type)
        self.context.ovs_bridge = self.bridge
        self.gateway = self.bridge.ensure_gateway_port(cfg.host_gateway, mtu=self.pod_mtu)
        hostnet.configure_gateway(cfg.host_gateway, [p.network for p in self.ipam.pools],
                                  self.options.host_netns)
        if not cfg.effective_no_snat:
            self.snat = PodSNAT(cfg.host_gateway, self.node.pod_cidrs, self.options.host_netns)
            self.snat.install()
        driver = self.plugins.tunnel
        if driver is not None and cfg.tunnel_enabled:
            self.tunnel = self.bridge.ensure_tunnel_port(
                TUNNEL_PORT_NAME, driver, cfg.effective_tunnel_port, cfg.tunnel_csum)
            if cfg.ovs_datapath_type == "netdev":
                self._attach_uplink()
        # Plugins' own devices and ports, before any flow (theirs reference them).
        call_hook(self.pm, "antrea_datapath_ready", context=self.context)
        self.store.rebuild(self.bridge.interfaces())

        self.flows = self.flow_installer_factory(AgentRuntime(
            config=cfg, layout=self.layout, plugins=self.plugins, context=self.context,
            node=self.node, bridge_name=cfg.ovs_bridge, ovs_run_dir=cfg.ovs_run_dir,
            datapath_type=cfg.ovs_datapath_type, gateway=self.gateway, tunnel=self.tunnel,
            pod_mtu=self.pod_mtu, store=self.store))
        self.network_policy = networkpolicy.enable(
            self.pm, self.node.name, self.context.bridge,
            self.gateway.ips or gateway_ips(self.node.pod_cidrs),
            flush_datapath=(DatapathFlusher(cfg.ovs_run_dir)
                            if cfg.ovs_datapath_type == "netdev" else None),
            layout=self.layout)
        if self.context.bridge is not None:  # feature plugins' flow hooks
            pluginflows.start(self.pm, getattr(self.plugins, "features", {}),
                              self.context.bridge, self.layout, self.context)
        self._sync_node_routes()
        self._reconcile()

        self.configurator = PodConfigurator(
            ipam=self.ipam, veths=self.veths, ports=self.bridge, store=self.store,
            flows=self.flows, plugins=self.pm, context=self.context,
            settings=PodNetworkSettings(
                mtu=self.pod_mtu,
                disable_tx_checksum=(cfg.ovs_datapath_type == "netdev"
                                     or cfg.disable_tx_checksum_offload)))
        self.cni_server = CNIServer(cfg.cni_socket, self.configurator,
                                    max_workers=self.options.cni_workers)
        self.cni_server.start()
        self.query_server = AgentQueryServer(default_socket_path(cfg.cni_socket), self.store,
                                             self.layout, cfg.ovs_bridge, cfg.ovs_run_dir)
        self.query_server.start()
        self._start_policy_watch()
        self._install_cni()
        self.pm.hook.antrea_agent_started.call_historic(kwargs={"context": self.context})
        log.info("agent started node=%s podCIDRs=%s mtu=%d pods=%d socket=%s",
                 self.node.name, ",".join(self.node.pod_cidrs), self.pod_mtu,
                 len(self.store.containers()), cfg.cni_socket)

    def _start_policy_watch(self) -> None:
        """Find the controller and stream this node's policies into the enforcement, in
        the background: pods get networking while the controller is still starting, and
        whatever policy flows exist stay enforced until the watch delivers (never fail
        open)."""
        api = self.context.kube_api
        if api is None or self.network_policy is None:
            log.warning("NetworkPolicy watch disabled (cluster API=%s)", api is not None)
            return
        handler = self.network_policy.handler

        def run() -> None:
            try:
                watch = start_watch(api, self.options.node_name, handler, self._stop)
            except DiscoveryError as exc:
                if not self._stop.is_set():
                    log.error("NetworkPolicy watch not started: %s", exc)
                return
            if self._stop.is_set():  # stopped while discovering
                watch.stop()
            else:
                self.policy_watch = watch

        threading.Thread(target=run, name="antrea-policy-watch-start", daemon=True).start()

    def _attach_uplink(self) -> None:
        """Userspace tunnels need the node's transport IP on an OVS bridge (see
        bridge.lifecycle.attach_uplink): move the transport interface into br-phy."""
        assert self.node is not None and self.ovsdb is not None
        device = self.config.transport_interface
        if not device:
            found = hostnet.mtu_of_address_holder(self.node.ips, self.options.host_netns)
            if found is None:
                raise AgentError(f"no device holds the node's IPs {list(self.node.ips)}: "
                                 "set transportInterface")
            device = found[0]
        if device == UPLINK_BRIDGE:
            return  # attached by an earlier run
        # attach_uplink takes a netns *name* (ip netns exec); ours is a /run/netns path.
        netns = self.options.host_netns
        attach_uplink(self.ovsdb, UPLINK_BRIDGE, device,
                      netns=Path(netns).name if netns else None)
        log.info("uplink attached bridge=%s uplink=%s", UPLINK_BRIDGE, device)

    def _sync_node_routes(self) -> None:
        """Remote Nodes' tunnel flows and routes, in place before the previous run's flows
        are deleted (reconcile's sync_done)."""
        cfg = self.config
        api = getattr(self.cluster, "api", None)
        if cfg.traffic_encap_mode == "networkPolicyOnly":
            return  # the primary CNI routes between Nodes
        if ((cfg.tunnel_enabled and self.tunnel is None) or api is None
                or not isinstance(self.flows, RemoteNodeFlows)):
            log.warning("node routes disabled (tunnel=%s, cluster API=%s, installer=%s)",
                        self.tunnel is not None, api is not None, type(self.flows).__name__)
            return
        assert self.node is not None
        policy = RoutePolicy(cfg.traffic_encap_mode, hostnet.subnets_of_addresses(
            self.node.ips, self.options.host_netns))
        self.node_routes = NodeRouteController(
            api, self.options.node_name, self.flows, cfg.host_gateway,
            netns=self.options.host_netns, policy=policy,
            on_added=self._remote_node_added, on_removed=self._remote_node_removed)
        self.node_routes.sync(self._stop)

    def _remote_node_added(self, node: NodeInfo) -> None:
        if self.snat is not None:
            self.snat.add_pod_cidrs(node.pod_cidrs)  # pod-to-pod: never masqueraded
        call_hook(self.pm, "antrea_node_added", node=node, context=self.context)

    def _remote_node_removed(self, node: NodeInfo) -> None:
        if self.snat is not None:
            self.snat.remove_pod_cidrs(node.pod_cidrs)
        call_hook(self.pm, "antrea_node_removed", node=node, context=self.context)

    def _pod_mtu(self) -> int:
        cfg = self.config
        assert self.node is not None
        if cfg.default_mtu:
            return int(cfg.default_mtu)
        ipv6 = bool(self.node.ips) and transport_is_ipv6(self.node.ips)
        overhead = tunnel_overhead(cfg, self.plugins.tunnel, ipv6)
        underlay = hostnet.underlay_mtu(self.node.ips, cfg.transport_interface,
                                        self.options.host_netns)
        tunnelled = pod_mtu(0, underlay, overhead)
        limits = self.pm.hook.antrea_pod_mtu_limit(config=cfg, underlay_mtu=underlay)
        mtu = limited(tunnelled, limits)
        log.info("pod MTU mtu=%d underlay=%s overhead=%d ipv6_transport=%s limits=%s", mtu,
                 underlay, overhead, ipv6, limits or "-")
        return mtu

    def _reconcile(self) -> None:
        assert self.flows is not None and self.bridge is not None and self.ipam is not None
        flows = self.flows
        self.reconciled = reconcile_pods(
            store=self.store, ports=self.bridge, veths=self.veths, ipam=self.ipam,
            existing_pods=self.cluster.local_pods(), on_removed=flows.uninstall_pod_flows)
        # A restarted agent reinstalls every surviving pod's flows (the installer may use
        # a new cookie round) and tells plugins about them, as the hook contract says.
        pods = self.store.pod_interfaces()
        for pod in pods:
            flows.install_pod_flows(pod)
            try:
                call_hook(self.pm, "antrea_pod_added", pod=pod, context=self.context)
            except StepFailed as exc:
                raise AgentError(f"{exc.step} failed for existing pod "
                                 f"{pod.namespace}/{pod.name}: {exc.cause}") from exc
        flows.sync_done()

    def _install_cni(self) -> None:
        opts = self.options
        if opts.cni_bin_dir is not None:
            cniconfig.install_cni_binaries(opts.cni_bin_dir, opts.cni_executable)
        if opts.cni_conf_dir is not None:
            cniconfig.install_conflist(opts.cni_conf_dir, self.config.cni_socket)

    # -- stop ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop serving; the datapath stays as it is for the next agent run."""
        self._stop.set()
        if self.cni_server is not None:
            try:
                self.pm.hook.antrea_agent_stopping(context=self.context)
            except Exception:
                log.exception("a plugin failed in antrea_agent_stopping")
        self._close()
        log.info("agent stopped node=%s", self.options.node_name)

    def _close(self) -> None:
        if self.node_routes is not None:
            self.node_routes.stop()
            self.node_routes = None
        if self.policy_watch is not None:
            self.policy_watch.stop()
            self.policy_watch = None
        if self.query_server is not None:
            self.query_server.stop()
            self.query_server = None
        if self.cni_server is not None:
            self.cni_server.stop()
            self.cni_server = None
        close = getattr(self.flows, "close", None)
        if callable(close):
            close()
        self.flows = None
        if self.ovsdb is not None:
            self.ovsdb.close()
            self.ovsdb = None

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
