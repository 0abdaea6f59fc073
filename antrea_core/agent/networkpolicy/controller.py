"""The agent's NetworkPolicy enforcement: rule cache in, policy flows out.

`NetworkPolicyController` is what the watch client talks to (`handler`, a
`PolicyEventHandler`) and what the agent tells about local pods (`pod_added` /
`pod_removed`). After each call it realizes the dirty rules: it recomputes their units,
updates the `FlowTable` and sends the flows whose rendering changed — additions and
modifications first, then deletions — in **one atomic bundle**, so no packet ever sees
an isolated pod open halfway through an update.

Fail-closed rules:

* nothing is deleted because the controller is unreachable: the watch client simply
  stops calling; flows stay as they are;
* a full snapshot (`replace_all`, first sync after an agent restart) replaces every
  policy flow of any cookie round in one bundle: a restarted agent keeps the previous
  run's flows until the new set is ready;
* when ovs-vswitchd restarts (empty tables) the whole policy flow set is replayed
  before feature and pod-networking flows come back (`attach_replay`: the connection's
  first reconnect listener, `ReplayOrder.POLICY`).

Calls come from the watch client's thread and the CNI server's threads; one lock
serialises them.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol

from os_ken.ofproto import ofproto_v1_5 as ofp

from antrea_core.agent.networkpolicy import flowcalc
from antrea_core.agent.networkpolicy.flowcalc import FEATURE, FlowKey, FlowTable
from antrea_core.agent.networkpolicy.rulecache import (
    LocalPod,
    RuleCache,
    RuleKey,
    RuleUnit,
)
from antrea_core.agent.openflow.connection import ReplayOrder
from antrea_core.agent.openflow.flows import Flow
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    Direction,
    NetworkPolicy,
    WatchEvent,
)

log = logging.getLogger("antrea.agent.networkpolicy")

MAX_CONJ_ID = 0xFFFFFFFF


class PolicyReplayError(RuntimeError):
    """The policy flows could not be put back after ovs-vswitchd reconnected."""


# A freed conjunction id is not handed out again for this long. The lab saw a deleted
# rule's allow come back for more than 10 s (OpenFlow tables correct, userspace datapath
# still forwarding) when its id was reused at once by the next rules; Antrea likewise
# keeps released ids out of use for a few seconds and reuses them oldest first.
ID_REUSE_DELAY = 30.0


class ConjIDAllocator:
    """Conjunction ids per unit key; a freed id is reused (oldest first) only once
    `reuse_delay` seconds have passed since its release."""

    def __init__(self, reuse_delay: float = ID_REUSE_DELAY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ids: dict[Hashable, int] = {}
        self._free: collections.deque[tuple[float, int]] = collections.deque()
        self._next = itertools.count(1)
        self._reuse_delay = reuse_delay
        self._clock = clock

    def get(self, key: Hashable) -> int:
        conj_id = self._ids.get(key)
        if conj_id is None:
            conj_id = self._fresh()
            self._ids[key] = conj_id
        return conj_id

    def _fresh(self) -> int:
        if self._free and self._clock() - self._free[0][0] >= self._reuse_delay:
            return self._free.popleft()[1]
        conj_id = next(self._next)
        if conj_id <= MAX_CONJ_ID:
            return conj_id
        if self._free:  # exhausted: an id still in quarantine beats failing
            return self._free.popleft()[1]
        raise RuntimeError("conjunction ids exhausted")

    def release(self, key: Hashable) -> None:
        conj_id = self._ids.pop(key, None)
        if conj_id is not None:
            self._free.append((self._clock(), conj_id))

    def keys(self) -> list[Hashable]:
        return list(self._ids)


class NetworkPolicyController:
    """Enforces the policies of the rule cache on one bridge.

    `bridge` is the agent's `OFBridge` (None: compute only, nothing is installed —
    for tests and agents running with a fake flow installer).
    """

    def __init__(self, node_name: str, bridge: Any | None,
                 gateway_ips: Iterable[str] = (),
                 flush_datapath: Callable[[], None] | None = None,
                 layout: PipelineLayout | None = None) -> None:
        # The pipeline's table ids, for the SCTP association flows (none without it).
        self.layout = layout
        # Called after policy flows changed in OVS (`dpflush.DatapathFlusher` on the
        # userspace datapath, whose cached flows can outlive a narrowed policy).
        self.flush_datapath = flush_datapath
        # Local pods as announced by the agent (pod hooks): on CNI DEL the hook comes
        # before the interface store forgets the pod, so the store cannot be the source.
        self._pods: dict[tuple[str, str], LocalPod] = {}
        self.cache = RuleCache(node_name, self._local_pod)
        self.bridge = bridge
        self.gateway_ips = tuple(gateway_ips)
        self.table = FlowTable()
        self.conj_ids = ConjIDAllocator()
        self._units: dict[RuleKey, dict[Hashable, RuleUnit]] = {}
        self._isolated: dict[Direction, frozenset[LocalPod]] = {
            Direction.IN: frozenset(), Direction.OUT: frozenset()}
        self._lock = threading.RLock()
        self._installed_once = False
        self.last_sync_seconds = 0.0

    @property
    def handler(self) -> NetworkPolicyController:
        """The `PolicyEventHandler` for the watch client."""
        return self

    # -- PolicyEventHandler -----------------------------------------------------------

    def replace_all(self, policies: list[NetworkPolicy],
                    applied_to_groups: list[AppliedToGroup],
                    address_groups: list[AddressGroup]) -> None:
        with self._lock:
            self.cache.replace_all(policies, applied_to_groups, address_groups)
            self._sync()

    def apply(self, event: WatchEvent) -> None:
        with self._lock:
            self.cache.apply(event)
            self._sync()

    # -- local pods -------------------------------------------------------------------

    def _local_pod(self, namespace: str, name: str) -> LocalPod | None:
        return self._pods.get((namespace, name))

    def pod_added(self, pod: PodPort) -> None:
        """A local pod is attached (CNI ADD, or found again after an agent restart)."""
        local = LocalPod(pod.namespace, pod.name, pod.ofport, tuple(pod.ips))
        with self._lock:
            if self._pods.get((pod.namespace, pod.name)) == local:
                return
            self._pods[(pod.namespace, pod.name)] = local
            self._pod_changed(pod.namespace, pod.name)

    def pod_removed(self, pod: PodPort) -> None:
        """A local pod is being detached (CNI DEL)."""
        with self._lock:
            if self._pods.pop((pod.namespace, pod.name), None) is not None:
                self._pod_changed(pod.namespace, pod.name)

    def _pod_changed(self, namespace: str, name: str) -> None:
        self.cache.pod_changed(namespace, name)
        if self.cache.synced or self._installed_once:
            self._sync()

    # -- realization ------------------------------------------------------------------

    def _sync(self) -> None:
        started = time.perf_counter()
        full, dirty = self.cache.take_dirty()
        if full or not self._installed_once:
            self._resync_all()
        else:
            changed = set()
            for key in dirty:
                changed |= self._realize_rule(key)
            changed |= self._realize_isolation()
            self._send(changed)
        self.last_sync_seconds = time.perf_counter() - started
        log.debug("policy sync full=%s rules=%d flows=%d seconds=%.3f", full, len(dirty),
                  len(self.table), self.last_sync_seconds)

    def _realize_rule(self, key: RuleKey) -> set[FlowKey]:
        old = self._units.pop(key, {})
        new = {u.key: u for u in self.cache.units(key)}
        changed: set[FlowKey] = set()
        for ukey, unit in new.items():
            if old.get(ukey) == unit:
                continue
            changed |= self.table.set_entries(
                ukey, flowcalc.unit_entries(unit, self.conj_ids.get(ukey)))
        for ukey in old.keys() - new.keys():
            changed |= self.table.set_entries(ukey, ())
            self.conj_ids.release(ukey)
        if new:
            self._units[key] = new
        return changed

    def _realize_isolation(self) -> set[FlowKey]:
        ingress, egress = self.cache.isolation()
        changed: set[FlowKey] = set()
        for direction, now in ((Direction.IN, ingress), (Direction.OUT, egress)):
            before = self._isolated[direction]
            for pod in now - before:
                changed |= self.table.set_entries(("deny", direction, pod),
                                                  [flowcalc.deny_entry(direction, pod)])
            for pod in before - now:
                changed |= self.table.set_entries(("deny", direction, pod), ())
            self._isolated[direction] = now
        return changed

    def _resync_all(self) -> None:
        """Recompute everything and replace the feature's flows in one bundle."""
        keys = set(self.cache.all_rule_keys()) | set(self._units)
        for key in keys:
            self._realize_rule(key)
        self._realize_isolation()
        self._replace_installed()

    def _replace_installed(self) -> bool:
        if self.bridge is None:
            self._installed_once = True
            return True
        flows = [*flowcalc.static_flows(self.gateway_ips, self.layout), *self.table.flows()]
        try:
            self.bridge.replace_feature_flows(FEATURE, flows)
        except Exception:
            self.cache.mark_full()  # retried on the next call or OVS reconnect
            log.exception("installing policy flows failed; will retry with a full sync")
            return False
        self._installed_once = True
        log.info("policy flows replaced flows=%d rules=%d", len(flows), len(self._units))
        if self.flush_datapath is not None:
            self.flush_datapath()
        return True

    def _send(self, changed: set[FlowKey]) -> None:
        if self.bridge is None or not changed:
            return
        adds: list[Flow] = []
        deletes: list[Flow] = []
        for key in changed:
            flow = self.table.flow(key)
            if flow is None:
                deletes.append(flowcalc.delete_flow(key))
            else:
                adds.append(flow)
        bridge = self.bridge
        msgs, labels = bridge.compile(adds, FEATURE)
        cookie = bridge.cookie(FEATURE)
        msgs += [bridge.encoder.encode(f, cookie, ofp.OFPFC_DELETE_STRICT) for f in deletes]
        labels = [*labels, *(f"delete {f}" for f in deletes)]
        try:
            bridge.conn.bundle(msgs, describe=lambda i: f"network-policy: {labels[i]}")
        except Exception:
            self.cache.mark_full()
            log.exception("updating policy flows failed; will retry with a full sync")
            return
        log.debug("policy flows updated added=%d deleted=%d", len(adds), len(deletes))
        if self.flush_datapath is not None:
            self.flush_datapath()

    # -- OVS reconnect ----------------------------------------------------------------

    def replay(self) -> None:
        """ovs-vswitchd lost its flows: put the whole policy flow set back. Raises
        `PolicyReplayError` if that failed."""
        with self._lock:
            if not (self._installed_once or self.cache.synced):
                return  # no snapshot yet: nothing we know of to enforce
            log.warning("replaying policy flows flows=%d", len(self.table))
            if not self._replace_installed():
                raise PolicyReplayError("policy flows could not be replayed")

    def attach_replay(self, conn: Any) -> Callable[[], None]:
        """Replay on `conn`'s reconnects, before feature and pod-forwarding flows
        (`ReplayOrder.POLICY`), as a required listener: an isolated pod must not be
        reachable while its policy flows are missing, so if the replay fails nothing
        after it is replayed until it succeeds. Returns a function detaching it."""
        return conn.add_reconnect_listener(lambda _conn: self.replay(),
                                           order=ReplayOrder.POLICY, name=FEATURE,
                                           required=True)

    # -- introspection ----------------------------------------------------------------

    def flows(self) -> list[Flow]:
        """The desired policy flows (static ones included)."""
        with self._lock:
            return [*flowcalc.static_flows(self.gateway_ips, self.layout), *self.table.flows()]

    def isolated(self, direction: Direction) -> frozenset[LocalPod]:
        return self._isolated[direction]


class PodPort(Protocol):
    """What the controller needs of a local pod (`plugins.context.PodInterface` fits)."""

    namespace: str
    name: str
    ofport: int
    ips: tuple[str, ...]
