"""Realize the Service model on the bridge: diff the desired Service flows/groups against
what is installed and apply the difference; answer packets to Services without endpoints.

The whole desired set is recomputed from the model on every sync (cheap at the scale of
one node's Services; flows of endpoints shared by several Services then need no
reference counting), and only changed flows and groups are sent, in a bundle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.openflow.connection import CODEC, PacketIn
from antrea_core.agent.openflow.flows import Flow, Group
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.agent.openflow.registers import CT_ZONE_V4
from antrea_proxy import serviceflows as sf
from antrea_proxy.conntrack import Runner, flush_endpoints
from antrea_proxy.model import ServicePort
from antrea_proxy.reject import reject_reply

log = logging.getLogger("antrea.agent.proxy")

FEATURE = "AntreaProxy"
FIRST_GROUP_ID = 0x1000  # leaves low ids to other features


class GroupIds:
    """Stable group ids per group key while the key is in use; freed ids are reused."""

    def __init__(self, first: int = FIRST_GROUP_ID) -> None:
        self._ids: dict[tuple[Any, ...], int] = {}
        self._free: list[int] = []
        self._next = first

    def assign(self, keys: Iterable[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
        wanted = set(keys)
        for key in set(self._ids) - wanted:
            self._free.append(self._ids.pop(key))
        for key in sorted(wanted - set(self._ids), key=repr):
            if self._free:
                self._ids[key] = self._free.pop()
            else:
                self._ids[key] = self._next
                self._next += 1
        return dict(self._ids)


class Proxier:
    def __init__(self, bridge: Any, layout: PipelineLayout, cfg: sf.ProxyFlowConfig,
                 conntrack: Runner | None = None, feature: str = FEATURE) -> None:
        self.bridge = bridge
        self.layout = layout
        self.feature = feature
        self.cfg = cfg
        self.conntrack = conntrack
        self._lock = threading.Lock()
        self._flows: dict[tuple[Any, ...], tuple[Flow, str]] = {}
        self._groups: dict[int, tuple[Group, str]] = {}
        self._ports: dict[tuple[str, ...], ServicePort] = {}
        self._group_ids = GroupIds()
        self.syncs = 0

    # -- installing ---------------------------------------------------------------------

    def install_initial(self) -> None:
        """Replace every flow of this feature (a previous agent run's included) by the
        Service-independent ones; Service flows follow with the first `sync`."""
        with self._lock:
            self.bridge.replace_feature_flows(self.feature, sf.initial_flows(self.layout, self.cfg))
            self._flows.clear()
            self._groups.clear()

    def replay(self) -> None:
        """ovs-vswitchd lost its flows and groups: put all of ours back."""
        with self._lock:
            self.bridge.replace_feature_flows(self.feature, sf.initial_flows(self.layout, self.cfg))
            items: list[Flow | Group] = [g for g, _ in self._groups.values()]
            items += [f for f, _ in self._flows.values()]
            self.bridge.install(items, self.feature)
        log.warning("service flows replayed flows=%d groups=%d", len(self._flows),
                    len(self._groups))

    def sync(self, ports: Iterable[ServicePort]) -> None:
        ports = list(ports)
        with self._lock:
            self._sync(ports)

    def _sync(self, ports: list[ServicePort]) -> None:
        keys = set()
        for sp in ports:
            keys |= sf.needed_group_keys(sp, self.cfg)
        group_ids = self._group_ids.assign(keys)
        flows, groups = sf.all_flows(ports, self.cfg, self.layout, group_ids)
        want_flows = {sf.flow_key(f): (f, sf.flow_signature(f)) for f in flows}
        want_groups = {g.group_id: (g, sf.group_signature(g)) for g in groups}
        add: list[Flow | Group] = [g for gid, (g, sig) in want_groups.items()
                                   if self._groups.get(gid, (None, ""))[1] != sig]
        add += [f for k, (f, sig) in want_flows.items()
                if self._flows.get(k, (None, ""))[1] != sig]
        remove: list[Flow | Group] = [f for k, (f, _) in self._flows.items()
                                      if k not in want_flows]
        remove += [g for gid, (g, _) in self._groups.items() if gid not in want_groups]
        if add:
            self.bridge.install(add, self.feature)
        if remove:
            self.bridge.delete(remove, self.feature)
        self._flows, self._groups = want_flows, want_groups
        self._forget_changed(ports)
        self.syncs += 1
        if add or remove:
            log.info("service flows synced ports=%d changed=%d removed=%d", len(ports),
                     len(add), len(remove))

    def _forget_changed(self, ports: list[ServicePort]) -> None:
        """Per Service port whose endpoints changed or that is gone: drop its learned
        affinity (it may point at a removed endpoint) and stale UDP/SCTP conntrack
        entries."""
        new = {sp.key: sp for sp in ports}
        for key, old in self._ports.items():
            cur = new.get(key)
            if cur is not None and cur.endpoints == old.endpoints and \
                    cur.affinity_timeout == old.affinity_timeout:
                continue
            gone = {e.key for e in old.endpoints} - (
                {e.key for e in cur.endpoints} if cur is not None else set())
            # Stateless SCTP associations keep their endpoints while endpoints are only
            # added; the other learned choices go at any change (ClientIP affinity
            # follows the endpoint set, as kube-proxy's does).
            if old.affinity_timeout or (sf.stateless(old, self.cfg) and gone):
                for fe in sf.frontends(old, self.cfg):
                    self.bridge.delete(sf.frontend_match(old.protocol, fe), self.feature,
                                       table="SessionAffinity")
            if old.protocol in ("UDP", "SCTP") and self.conntrack is not None:
                try:
                    flush_endpoints(self.conntrack, CT_ZONE_V4, old.protocol, gone)
                except Exception:
                    log.exception("flushing stale conntrack entries failed service=%s", old)
        self._ports = new

    # -- packet-in: reject ----------------------------------------------------------------

    def handle_packet_in(self, pin: PacketIn) -> bool:
        """Answer a rejected packet; False if the packet-in is not ours."""
        if pin.userdata is None or bytes(pin.userdata) != sf.REJECT_USERDATA:
            return False
        in_port = pin.fields.get("in_port")
        reply = reject_reply(pin.data)
        if reply is None or in_port is None:
            return True
        out = ofpp.OFPPacketOut(CODEC, buffer_id=ofp.OFP_NO_BUFFER,
                                match=ofpp.OFPMatch(in_port=ofp.OFPP_CONTROLLER),
                                actions=[ofpp.OFPActionOutput(int(in_port))], data=reply)
        self.bridge.conn.send(out)
        log.debug("rejected a packet to a Service without endpoints in_port=%s", in_port)
        return True
