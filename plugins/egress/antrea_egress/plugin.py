"""The Egress feature plugin: SNAT of selected Pods' external traffic to Egress IPs.

Hooks: `antrea_pipeline_tables` declares EgressMark; `antrea_agent_started` installs the
fixed flows, starts this Node's Lease heartbeat and one thread that watches Egresses,
ExternalIPPools, Pods, Namespaces, Nodes and the agents' Leases, and re-plans whenever
any of them changes or a Lease runs out (`model.plan`), then applies the plan:

* Egress IPs this Node wins are configured on its transport interface and announced by
  gratuitous ARP; those it lost are removed (`addresses`);
* the host SNATs the Pods of those IPs, wherever they run (`hostsnat`);
* local Pods whose Egress Node is another Node are tunneled to it (`egressflows`);
* the Egress Node writes `status.egressNode`, `status.egressIP` and the `IPAssigned`
  condition.

Local Pods' IPs come from CNI ADD (`antrea_pod_added`) as soon as their interface
exists, before the API shows them: a Pod's first connections already leave with its
Egress IP. Every agent watches every Pod for now; Antrea's controller computes
EgressGroups for the agents instead, the next step when clusters get large.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from antrea_core.agent.openflow.connection import ReplayOrder
from antrea_core.apis.egress import Egress, ExternalIPPool, parse_valid
from antrea_core.k8s.informer import Informer
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import EGRESSES, EXTERNAL_IP_POOLS, LEASES, NAMESPACES, NODES, PODS
from antrea_core.k8s.resync import run_coalesced
from antrea_core.plugins.hookspecs import hookimpl
from antrea_egress import egressflows
from antrea_egress.addresses import EgressAddresses
from antrea_egress.election import LeaseHeartbeat, Liveness
from antrea_egress.hostsnat import EgressSNAT
from antrea_egress.model import NodeRecord, Plan, PodRecord, plan
from antrea_egress.status import StatusWriter

log = logging.getLogger("antrea.agent.egress")

LEASE_SECONDS = 5  # a dead Node's Egress IPs move after this long
RENEW_SECONDS = 1.0
COALESCE_SECONDS = 0.05
RETRY_SECONDS = 1.0
RESYNC_SECONDS = 10.0  # re-read local addresses (Egress IPs configured by hand)


class Plugin:
    feature = egressflows.FEATURE
    default_enabled = True

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._informers: dict[str, Informer] = {}
        self._detach: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._local_pod_ips: dict[tuple[str, str], tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self.liveness = Liveness()
        self.heartbeat: LeaseHeartbeat | None = None
        self.addresses: EgressAddresses | None = None
        self.snat: EgressSNAT | None = None
        self.status: StatusWriter | None = None
        self.flow_cfg: egressflows.EgressFlowConfig | None = None
        self.bridge: Any = None
        self.node_name = ""
        self.max_ips_per_node = 255
        self.can_redirect = True
        self.last_plan: Plan | None = None
        self._flows: list[Any] | None = None

    @hookimpl
    def antrea_pipeline_tables(self) -> list[Any]:
        return list(egressflows.TABLES)

    @hookimpl
    def antrea_agent_started(self, context: Any) -> None:
        if context.bridge is None or context.kube_api is None or context.node is None:
            log.warning("Egress inactive: no bridge or no cluster API")
            return
        cfg = context.config
        self.node_name = context.node_name
        self.max_ips_per_node = int(cfg.egress.max_egress_ips_per_node)
        # noEncap/hybrid without a tunnel: no way to hand a packet to another Node yet.
        self.can_redirect = bool(cfg.tunnel_enabled)
        self.bridge = context.bridge
        self.flow_cfg = egressflows.EgressFlowConfig(
            gateway_mac=_mac_of(cfg.host_gateway),
            local_pod_cidrs=tuple(context.node.pod_cidrs),
            except_cidrs=tuple(str(c) for c in cfg.egress.except_cidrs))
        self.bridge.install(egressflows.initial_flows(self.flow_cfg), egressflows.FEATURE)
        self._detach.append(self.bridge.conn.add_reconnect_listener(
            lambda _conn: self._replay(), order=ReplayOrder.FEATURES,
            name=egressflows.FEATURE))
        self.addresses = EgressAddresses(context.node.ips)
        self.snat = EgressSNAT(cfg.host_gateway, self.flow_cfg.except_cidrs,
                               fully_random=cfg.egress_snat_fully_random_ports)
        self.snat.install()
        raw = RawClient(context.kube_api)
        self.status = StatusWriter(raw, self.node_name)
        namespace = os.environ.get("POD_NAMESPACE", "kube-system")
        self.heartbeat = LeaseHeartbeat(raw, self.node_name, namespace, LEASE_SECONDS,
                                        RENEW_SECONDS)
        for resource, ns in ((EGRESSES, None), (EXTERNAL_IP_POOLS, None), (PODS, None),
                             (NAMESPACES, None), (NODES, None), (LEASES, namespace)):
            informer = Informer(raw, resource, namespace=ns)
            informer.add_handler(_Changed(self, resource.plural))
            self._informers[resource.plural] = informer
        self._thread = threading.Thread(target=self._run, name="antrea-egress", daemon=True)
        self._thread.start()
        log.info("Egress started node=%s leaseSeconds=%d", self.node_name, LEASE_SECONDS)

    @hookimpl
    def antrea_agent_stopping(self, context: Any) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)
        for informer in self._informers.values():
            informer.stop()
        for detach in self._detach:
            detach()
        if self.heartbeat is not None:
            # Other Nodes take our Egress IPs over now rather than when the Lease expires,
            # so we must not keep answering for them.
            self.heartbeat.stop(release=True)
            if self.addresses is not None:
                try:
                    self.addresses.release_all()
                except Exception as exc:
                    log.warning("cannot release Egress IPs error=%s", exc)
                self.addresses.close()

    @hookimpl
    def antrea_pod_added(self, pod: Any, context: Any) -> None:
        with self._lock:
            self._local_pod_ips[(pod.namespace, pod.name)] = tuple(pod.ips)
        self._dirty.set()

    @hookimpl
    def antrea_pod_removed(self, pod: Any, context: Any) -> None:
        with self._lock:
            self._local_pod_ips.pop((pod.namespace, pod.name), None)
        self._dirty.set()

    # -- the sync loop --------------------------------------------------------------------

    def changed(self, kind: str, obj: dict[str, Any], deleted: bool) -> None:
        if kind == LEASES.plural:
            # Every agent renews every second: only a Node appearing or going changes
            # the plan (expiries are timed by the sync loop).
            before = self.liveness.alive()
            if deleted:
                self.liveness.forget(obj)
            else:
                self.liveness.observe(obj)
            if self.liveness.alive() == before:
                return
        self._dirty.set()

    def _run(self) -> None:
        assert self.heartbeat is not None
        self.heartbeat.start()
        for informer in self._informers.values():
            informer.start()
        for informer in self._informers.values():
            while not informer.wait_synced(RETRY_SECONDS):
                if self._stop.is_set():
                    return
        self._dirty.set()
        run_coalesced(self.sync, stop=self._stop, dirty=self._dirty, what="egress sync",
                      logger=log, coalesce=COALESCE_SECONDS, retry=RETRY_SECONDS,
                      deadline=self._next_look)

    def _next_look(self) -> float:
        """Re-plan when the next live Node's Lease runs out, at the latest after
        RESYNC_SECONDS (Egress IPs configured by hand appear without any event)."""
        expiry = self.liveness.next_expiry()
        return RESYNC_SECONDS if expiry is None else min(RESYNC_SECONDS, expiry + 0.05)

    def sync(self) -> Plan:
        assert self.addresses and self.snat and self.status and self.flow_cfg
        egresses = parse_valid(Egress.from_obj, self._informers[EGRESSES.plural].list(), log)
        pools = {p.name: p for p in parse_valid(
            ExternalIPPool.from_obj, self._informers[EXTERNAL_IP_POOLS.plural].list(), log)}
        with self._lock:
            local = dict(self._local_pod_ips)
        pods = []
        for obj in self._informers[PODS.plural].list():
            meta = obj.get("metadata") or {}
            record = PodRecord.from_obj(obj, local.get((meta.get("namespace", ""),
                                                        meta.get("name", ""))))
            if record is not None:
                pods.append(record)
        namespaces = {(o.get("metadata") or {}).get("name", ""):
                      dict((o.get("metadata") or {}).get("labels") or {})
                      for o in self._informers[NAMESPACES.plural].list()}
        nodes = {n.name: n for n in (NodeRecord.from_obj(o)
                                     for o in self._informers[NODES.plural].list())}
        alive = self.liveness.alive()
        result = plan(self.node_name, egresses, pools, pods, namespaces, nodes, alive,
                      self.addresses.local_ips(), self.max_ips_per_node)
        for warning in result.warnings:
            log.warning("%s", warning)
        # Take IPs and SNAT them before the other Nodes' redirects arrive; the status
        # comes last, as the announcement that this Node serves them.
        self.addresses.sync(result.owned)
        self.snat.sync(result.snat)
        redirects = result.redirects
        if redirects and not self.can_redirect:
            log.warning("Egress without a tunnel: %d local Pods keep the Node IP instead of "
                        "reaching their remote Egress Node", len(redirects))
            redirects = {}
        flows = egressflows.dynamic_flows(
            self.flow_cfg, redirects,
            (n.transport_ip for n in nodes.values() if n.transport_ip))
        if flows != self._flows:
            self.bridge.replace_feature_flows(
                egressflows.FEATURE, [*egressflows.initial_flows(self.flow_cfg), *flows])
            self._flows = flows
            log.info("egress flows redirects=%d", len(redirects))
        self.status.sync(result, {e.name: e for e in egresses}, alive)
        self.last_plan = result
        return result

    def _replay(self) -> None:
        assert self.flow_cfg is not None
        self.bridge.install([*egressflows.initial_flows(self.flow_cfg), *(self._flows or [])],
                            egressflows.FEATURE)


class _Changed:
    """Informer handler: any change of `kind` makes the plan stale."""

    def __init__(self, plugin: Plugin, kind: str) -> None:
        self.plugin = plugin
        self.kind = kind

    def on_add(self, obj: dict[str, Any]) -> None:
        self.plugin.changed(self.kind, obj, False)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.plugin.changed(self.kind, new, False)

    def on_delete(self, obj: dict[str, Any]) -> None:
        self.plugin.changed(self.kind, obj, True)


def _mac_of(ifname: str) -> str:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.link_lookup(ifname=ifname)
        if not links:
            raise RuntimeError(f"Egress: gateway interface {ifname} not found")
        return str(ipr.get_links(links[0])[0].get_attr("IFLA_ADDRESS"))
