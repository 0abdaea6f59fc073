"""The AntreaProxy feature plugin: Kubernetes Services load-balanced in the OVS pipeline.

Hooks: `antrea_pipeline_tables` declares the Service tables; `antrea_agent_started`
installs the Service-independent flows and starts one background thread that lists and
watches Services and EndpointSlices (the core's raw-dict informers), keeps the model (`model`) and
re-syncs the bridge (`proxier`) whenever either changes, coalescing bursts of events.

Two couplings with the core go through the seams of the bridge's OpenFlow connection:
packet-ins sent by our flows (our feature id in the cookie: the reject action) come to
`Proxier.handle_packet_in`, and after ovs-vswitchd reconnects our flows are replayed
among the feature flows (`ReplayOrder.FEATURES`: after policy, before pod forwarding).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from antrea_core.agent.openflow.connection import ReplayOrder
from antrea_core.agent.openflow.podnetwork import gateway_ips
from antrea_core.k8s.informer import Informer, object_key
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import ENDPOINT_SLICES, NODES, SERVICES
from antrea_core.k8s.resync import run_coalesced
from antrea_core.plugins.hookspecs import hookimpl
from antrea_proxy import serviceflows
from antrea_proxy.conntrack import appctl_runner
from antrea_proxy.healthcheck import HealthCheckServers, health_checks
from antrea_proxy.hostnodeport import HostNodePorts
from antrea_proxy.model import JSON, ServiceCatalog
from antrea_proxy.proxier import FEATURE, Proxier

log = logging.getLogger("antrea.agent.proxy")

COALESCE_SECONDS = 0.02  # gather an EndpointSlice burst into one sync
RETRY_SECONDS = 1.0


class Plugin:
    feature = FEATURE
    default_enabled = True

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._lock = threading.Lock()  # the catalog: written by two watch threads
        self.catalog: ServiceCatalog | None = None
        self.proxier: Proxier | None = None
        self.node_ports: HostNodePorts | None = None
        self.health_checks: HealthCheckServers | None = None
        self._thread: threading.Thread | None = None
        self._informers: list[Informer] = []
        self._detach: list[Callable[[], None]] = []

    @hookimpl
    def antrea_pipeline_tables(self) -> list[Any]:
        return serviceflows.tables()

    @hookimpl
    def antrea_agent_started(self, context: Any) -> None:
        if context.bridge is None or context.kube_api is None or context.node is None:
            log.warning("AntreaProxy inactive: no bridge or no cluster API")
            return
        cfg = context.config.antrea_proxy
        bridge = context.bridge
        gateway_ip = next(iter(gateway_ips(context.node.pod_cidrs)), "")
        gateway_mac = ""
        node_port_cidrs = [str(c) for c in cfg.node_port_addresses]
        if cfg.proxy_all:
            v4 = [c for c in node_port_cidrs if ipaddress.ip_network(c, strict=False).version
                  == 4]
            self.node_ports = HostNodePorts(context.config.host_gateway,
                                            addresses=v4 if node_port_cidrs else None)
            gateway_mac = self.node_ports.install()
            self.health_checks = HealthCheckServers()
        self.proxier = Proxier(
            bridge, context.layout,
            serviceflows.ProxyFlowConfig(node_ips=node_port_ips(context.node.ips,
                                                                node_port_cidrs),
                                         proxy_all=bool(cfg.proxy_all),
                                         gateway_ip=gateway_ip if cfg.proxy_all else "",
                                         gateway_mac=gateway_mac,
                                         learn_cookie=bridge.cookie(FEATURE),
                                         stateless_sctp=context.config.ovs_datapath_type
                                         == "netdev"),
            conntrack=appctl_runner(context.config.ovs_run_dir))
        self._attach(bridge, self.proxier)
        self.proxier.install_initial()
        self.catalog = ServiceCatalog(
            local_node=context.node_name, service_proxy_name=cfg.service_proxy_name,
            skip_services=frozenset(cfg.skip_services),
            proxy_load_balancer_ips=bool(cfg.proxy_load_balancer_ips))
        raw = RawClient(context.kube_api)
        for resource, setter, fields in (
                (SERVICES, ServiceCatalog.set_service, None),
                (ENDPOINT_SLICES, ServiceCatalog.set_slice, None),
                # This node only: its zone label, for topology-aware routing.
                (NODES, ServiceCatalog.set_node, f"metadata.name={context.node_name}")):
            informer = Informer(raw, resource, field_selector=fields)
            informer.add_handler(_CatalogFeed(self, setter))
            self._informers.append(informer)
        self._thread = threading.Thread(target=self._run, name="antrea-proxy", daemon=True)
        self._thread.start()
        log.info("AntreaProxy started proxyAll=%s nodeIPs=%s", cfg.proxy_all,
                 ",".join(context.node.ips))

    @hookimpl
    def antrea_agent_stopping(self, context: Any) -> None:
        self._stop.set()
        self._dirty.set()
        for informer in self._informers:
            informer.stop()
        for detach in self._detach:
            detach()
        self._detach.clear()
        if self.health_checks is not None:
            self.health_checks.close()

    # -- internals ------------------------------------------------------------------------

    def _attach(self, bridge: Any, proxier: Proxier) -> None:
        conn = bridge.conn
        self._detach += [
            conn.add_packet_in_handler(bridge.feature_id(FEATURE), proxier.handle_packet_in),
            conn.add_reconnect_listener(lambda _conn: proxier.replay(),
                                        order=ReplayOrder.FEATURES, name=FEATURE),
        ]

    def _changed(self, setter: Any, key: str, obj: JSON | None) -> None:
        with self._lock:
            assert self.catalog is not None
            setter(self.catalog, obj, key)
        self._dirty.set()

    def _run(self) -> None:
        for informer in self._informers:
            informer.start()
        # First sync only once every list is in: Services seen before their
        # EndpointSlices would be programmed as having no endpoints (reject).
        for informer in self._informers:
            while not informer.wait_synced(RETRY_SECONDS):
                if self._stop.is_set():
                    return
        self._dirty.set()  # even with no Service at all: clear a previous run's flows
        run_coalesced(self._sync, stop=self._stop, dirty=self._dirty, what="service sync",
                      logger=log, coalesce=COALESCE_SECONDS, retry=RETRY_SECONDS)

    def _sync(self) -> None:
        with self._lock:
            assert self.catalog is not None
            ports = self.catalog.service_ports()
        assert self.proxier is not None
        self.proxier.sync(ports)
        if self.node_ports is not None:
            self.node_ports.sync(
                ((p.protocol, p.node_port) for p in ports if p.node_port),
                {ip for p in ports for ip in (*p.cluster_ips, *p.external_ips)})
        if self.health_checks is not None:
            self.health_checks.sync(health_checks(ports))

def node_port_ips(ips: Iterable[str], cidrs: Iterable[str]) -> tuple[str, ...]:
    """The node addresses that serve NodePorts: those within nodePortAddresses, or all
    when it is empty."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return tuple(ip for ip in ips
                 if not nets or any(ipaddress.ip_address(ip) in n for n in nets))


class _CatalogFeed:
    """Informer handler writing one resource into the plugin's ServiceCatalog."""

    def __init__(self, plugin: Plugin, setter: Any) -> None:
        self.plugin = plugin
        self.setter = setter

    def on_add(self, obj: JSON) -> None:
        self.plugin._changed(self.setter, object_key(obj), obj)

    def on_update(self, old: JSON, new: JSON) -> None:
        self.plugin._changed(self.setter, object_key(new), new)

    def on_delete(self, obj: JSON) -> None:
        self.plugin._changed(self.setter, object_key(obj), None)
