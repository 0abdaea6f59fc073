"""The controller's NetworkPolicy computation: Kubernetes objects in, control-plane objects
(with spans) out.

`NetworkPolicyController(store)` is fed Pods, Namespaces, Nodes and networking.k8s.io/v1
NetworkPolicies as plain dicts in API JSON shape (what a raw list/watch returns) and
publishes AppliedToGroups, AddressGroups and internal NetworkPolicies through the
`ControlPlaneStore` protocol:

- an AppliedToGroup's span is the nodes of its members; a NetworkPolicy's span is the union
  of its applied-to groups' spans; an AddressGroup's span is the union of the spans of the
  policies referencing it (computed as the union of those policies' applied-to groups);
- a group no policy references any more is deleted; objects whose span is empty are still
  upserted (with the empty span), so the store knows them and agents simply do not get them;
- membership changes are published as an upsert of the whole group (the store diffs).

Work is coalesced: every method call is one batch, and `with controller.batch():` makes a
larger one (use it for an informer's initial list), so each changed object is published
once per batch, not once per event. Within one publication the store sees: deletes of
NetworkPolicies, upserts of groups, upserts of NetworkPolicies, then deletes of groups
(so a policy never names a group the store does not have). An upsert may repeat an
unchanged object with a new span. Not thread-safe: call it from one thread or loop; an
initial sync of 100k pods is CPU-bound for seconds, so run it off the event loop or
accept the pause.

Choices where Kubernetes leaves room:
- hostNetwork pods are neither applied-to members nor peers (as Antrea does for K8s
  NetworkPolicy: their traffic does not cross the pod OVS ports); pods without an IP or
  terminated (Succeeded/Failed) are not members either;
- an invalid policy is logged with the offending field and not computed; if an earlier
  version was valid it stays in force (dropping it would silently open traffic);
- group names are a hash of the normalized selector, stable across restarts;
- namespaces always carry `kubernetes.io/metadata.name` (as the API server sets it).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from antrea_core.apis.controlplane import (
    ANY_ADDRESS,
    AddressGroup,
    AppliedToGroup,
    ControlPlaneStore,
    Direction,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyRule,
    ObjectKind,
    PolicyReference,
)
from antrea_core.controller.grouping.index import Group, GroupIndex
from antrea_core.controller.grouping.pods import pod_member
from antrea_core.controller.grouping.selectors import MATCH_ALL
from antrea_core.controller.networkpolicy.spec import PolicyError, parse_network_policy

logger = logging.getLogger("antrea.controller.networkpolicy")

# Kubernetes sets this label on every namespace (1.21+); added when missing so that
# selectors using it work against API servers that do not set it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

_EMPTY: frozenset[str] = frozenset()


class _Policy:
    __slots__ = ("ags", "atgs", "key", "obj", "published_obj", "published_span", "span")

    def __init__(self, key: tuple[str, str], obj: NetworkPolicy, atgs: tuple[Group, ...],
                 ags: tuple[Group, ...]) -> None:
        self.key = key
        self.obj = obj
        self.atgs = atgs
        self.ags = ags
        self.span: frozenset[str] | None = None
        self.published_obj: NetworkPolicy | None = None
        self.published_span: frozenset[str] | None = None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise ValueError("metadata.name missing")
    return meta


class NetworkPolicyController:
    """Computes AppliedToGroups, AddressGroups and internal NetworkPolicies from
    Kubernetes objects and publishes them to `store` with their spans.

    Feed it from informers: `add_*`/`update_*` take the new object (they are the same
    operation: an upsert), `delete_*` the last known object (only its namespace/name
    are read). Wrap an initial list in `with controller.batch():`."""

    def __init__(self, store: ControlPlaneStore, pause_gc_in_batches: bool = True) -> None:
        self._store = store
        # Computing allocates millions of long-lived objects; the cyclic GC would rescan
        # them again and again (about a third of an initial sync's time). Nothing here
        # depends on cycle collection, so batches run with it paused.
        self._pause_gc = pause_gc_in_batches
        self._index = GroupIndex()
        self._nodes: set[str] = set()
        self._policies: dict[tuple[str, str], _Policy] = {}
        self._atg_refs: dict[Group, set[_Policy]] = {}
        self._ag_refs: dict[Group, set[_Policy]] = {}
        # AddressGroup → applied-to groups of the policies referencing it (with counts):
        # its span is the union of their spans.
        self._ag_atgs: dict[Group, dict[Group, int]] = {}
        self._ag_spans: dict[Group, frozenset[str]] = {}
        self._published_atgs: set[Group] = set()
        self._published_ags: set[Group] = set()
        self._depth = 0
        self._dirty_policies: set[_Policy] = set()
        self._new_atgs: set[Group] = set()
        self._new_ags: set[Group] = set()
        self._dirty_ag_spans: set[Group] = set()
        self._released: set[Group] = set()
        self._deleted_policies: list[str] = []

    # -- batching --------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Coalesce everything done inside into one publication per changed object."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        resume_gc = self._pause_gc and gc.isenabled()
        if resume_gc:
            gc.disable()
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            try:
                self._flush()
            finally:
                if resume_gc:
                    gc.enable()

    def _apply(self, fn: Callable[[Mapping[str, Any]], None], obj: Mapping[str, Any]) -> None:
        if self._depth:
            self._call(fn, obj)
            return
        # Single events are small: no GC pause needed.
        self._depth = 1
        try:
            self._call(fn, obj)
        finally:
            self._depth = 0
            self._flush()

    @staticmethod
    def _call(fn: Callable[[Mapping[str, Any]], None], obj: Mapping[str, Any]) -> None:
        # The boundary for malformed input objects: log and skip, never crash the controller.
        try:
            fn(obj)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            meta = obj.get("metadata") if isinstance(obj, Mapping) else None
            ident = (f"{meta.get('namespace') or ''}/{meta.get('name')}"
                     if isinstance(meta, Mapping) else "?")
            logger.error("ignoring malformed object in %s: object=%s error=%r",
                         fn.__name__.lstrip("_"), ident, exc)

    # -- inputs ----------------------------------------------------------------------------

    def add_pod(self, pod: Mapping[str, Any]) -> None:
        self._apply(self._set_pod, pod)

    def update_pod(self, pod: Mapping[str, Any]) -> None:
        self._apply(self._set_pod, pod)

    def delete_pod(self, pod: Mapping[str, Any]) -> None:
        self._apply(self._delete_pod, pod)

    def add_namespace(self, namespace: Mapping[str, Any]) -> None:
        self._apply(self._set_namespace, namespace)

    def update_namespace(self, namespace: Mapping[str, Any]) -> None:
        self._apply(self._set_namespace, namespace)

    def delete_namespace(self, namespace: Mapping[str, Any]) -> None:
        self._apply(self._delete_namespace, namespace)

    def add_network_policy(self, policy: Mapping[str, Any]) -> None:
        self._apply(self._set_policy, policy)

    def update_network_policy(self, policy: Mapping[str, Any]) -> None:
        self._apply(self._set_policy, policy)

    def delete_network_policy(self, policy: Mapping[str, Any]) -> None:
        self._apply(self._delete_policy, policy)

    # Nodes do not change K8s NetworkPolicy computation (spans come from the nodes pods run
    # on); they are tracked so callers can inspect them and for node-scoped features.
    def add_node(self, node: Mapping[str, Any]) -> None:
        self._call(self._set_node, node)

    def update_node(self, node: Mapping[str, Any]) -> None:
        self._call(self._set_node, node)

    def delete_node(self, node: Mapping[str, Any]) -> None:
        self._call(self._delete_node, node)

    # -- introspection ---------------------------------------------------------------------

    @property
    def index(self) -> GroupIndex:
        return self._index

    def stats(self) -> dict[str, int]:
        return {"pods": self._index.pod_count(), "groups": len(self._index),
                "applied_to_groups": len(self._atg_refs), "address_groups": len(self._ag_refs),
                "network_policies": len(self._policies), "nodes": len(self._nodes),
                "selector_evaluations": self._index.evaluations}

    # -- pods and namespaces ---------------------------------------------------------------

    def _set_node(self, node: Mapping[str, Any]) -> None:
        self._nodes.add(_meta(node)["name"])

    def _delete_node(self, node: Mapping[str, Any]) -> None:
        self._nodes.discard(_meta(node)["name"])

    def _set_pod(self, pod: Mapping[str, Any]) -> None:
        meta = _meta(pod)
        ns = meta.get("namespace") or "default"
        name = meta["name"]
        member = pod_member(pod, self._index.pod_member(ns, name))
        # Copied: the index compares against it later, and callers may reuse their dicts.
        self._index.set_pod(ns, name, dict(meta.get("labels") or ()), member)

    def _delete_pod(self, pod: Mapping[str, Any]) -> None:
        meta = _meta(pod)
        self._index.remove_pod(meta.get("namespace") or "default", meta["name"])

    def _set_namespace(self, namespace: Mapping[str, Any]) -> None:
        meta = _meta(namespace)
        name = meta["name"]
        labels = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: name}
        self._index.set_namespace(name, labels)

    def _delete_namespace(self, namespace: Mapping[str, Any]) -> None:
        self._index.set_namespace(_meta(namespace)["name"], None)

    # -- policies --------------------------------------------------------------------------

    def _set_policy(self, policy: Mapping[str, Any]) -> None:
        try:
            spec = parse_network_policy(policy)
        except PolicyError as exc:
            meta = policy.get("metadata") if isinstance(policy, Mapping) else None
            ident = (f"{meta.get('namespace')}/{meta.get('name')}" if isinstance(meta, Mapping)
                     else "?")
            # A previously valid version stays in force: dropping it would open traffic.
            logger.error("invalid NetworkPolicy %s, not computed: field=%s error=%s",
                         ident, exc.field, exc)
            return
        key = (spec.namespace, spec.name)
        index = self._index
        ns = spec.namespace
        atg = index.acquire(ns, spec.pod_selector, None)
        ags: dict[Group, None] = {}
        rules = []
        for rule in spec.rules:
            names: dict[str, None] = {}
            blocks = rule.ip_blocks
            peers = rule.peers
            if (rule.any_peer and rule.direction is Direction.OUT
                    and any(isinstance(s.port, str) for s in rule.services)):
                # An egress named port resolves on the destination pod, so "to anyone"
                # needs every pod as a peer (as Antrea does); the ipBlocks covering
                # every address keep numeric ports open to any destination.
                peers = ((MATCH_ALL, MATCH_ALL),)
                blocks = ANY_ADDRESS
            for pod_sel, ns_sel in peers:
                group = index.acquire(ns, pod_sel, ns_sel)
                ags[group] = None
                names[group.name] = None
            rules.append(NetworkPolicyRule(rule.direction,
                                           NetworkPolicyPeer(tuple(names), blocks),
                                           rule.services, rule.priority))
        obj = NetworkPolicy(spec.uid, PolicyReference("K8sNetworkPolicy", ns, spec.name, spec.uid),
                            tuple(rules), (atg.name,), spec.policy_types, spec.generation)
        new = _Policy(key, obj, (atg,), tuple(ags))
        old = self._policies.get(key)
        self._policies[key] = new
        self._ref(new)
        self._dirty_policies.add(new)
        if old is not None:
            self._unref(old)
            self._dirty_policies.discard(old)
            if old.obj.name != obj.name:
                if old.published_obj is not None:
                    self._deleted_policies.append(old.obj.name)
            else:
                new.published_obj, new.published_span = old.published_obj, old.published_span
                if old.published_obj == obj:
                    new.obj = old.published_obj  # unchanged: nothing to republish

    def _delete_policy(self, policy: Mapping[str, Any]) -> None:
        meta = _meta(policy)
        old = self._policies.pop((meta.get("namespace") or "default", meta["name"]), None)
        if old is None:
            return
        self._unref(old)
        self._dirty_policies.discard(old)
        if old.published_obj is not None:
            self._deleted_policies.append(old.obj.name)

    def _ref(self, policy: _Policy) -> None:
        for group in policy.atgs:
            refs = self._atg_refs.get(group)
            if refs is None:
                self._atg_refs[group] = {policy}
                self._new_atgs.add(group)
            else:
                refs.add(policy)
        for group in policy.ags:
            refs = self._ag_refs.get(group)
            if refs is None:
                self._ag_refs[group] = {policy}
                self._new_ags.add(group)
                atgs = self._ag_atgs[group] = {}
            else:
                refs.add(policy)
                atgs = self._ag_atgs[group]
            for atg in policy.atgs:
                atgs[atg] = atgs.get(atg, 0) + 1
            self._dirty_ag_spans.add(group)

    def _unref(self, policy: _Policy) -> None:
        for group in policy.atgs:
            refs = self._atg_refs[group]
            refs.discard(policy)
            if not refs:
                del self._atg_refs[group]
                self._released.add(group)
        for group in policy.ags:
            refs = self._ag_refs[group]
            refs.discard(policy)
            if not refs:
                del self._ag_refs[group]
                del self._ag_atgs[group]
                self._ag_spans.pop(group, None)
                self._released.add(group)
                continue
            atgs = self._ag_atgs[group]
            for atg in policy.atgs:
                n = atgs[atg] - 1
                if n:
                    atgs[atg] = n
                else:
                    del atgs[atg]
            self._dirty_ag_spans.add(group)

    # -- publication -----------------------------------------------------------------------

    def _flush(self) -> None:
        index = self._index
        store = self._store
        atg_refs, ag_refs = self._atg_refs, self._ag_refs
        dirty_members, index.dirty_members = index.dirty_members, set()
        dirty_span, index.dirty_span = index.dirty_span, set()
        pub_atgs, self._new_atgs = self._new_atgs, set()
        pub_ags, self._new_ags = self._new_ags, set()
        ag_spans_dirty, self._dirty_ag_spans = self._dirty_ag_spans, set()
        policies, self._dirty_policies = self._dirty_policies, set()
        deleted, self._deleted_policies = self._deleted_policies, []
        released, self._released = self._released, set()

        for group in dirty_members:
            if group in atg_refs:
                pub_atgs.add(group)
            if group in ag_refs:
                pub_ags.add(group)
        for group in dirty_span:
            refs = atg_refs.get(group)
            if refs:
                pub_atgs.add(group)
                policies.update(refs)

        live = self._policies
        for policy in policies:
            atgs = policy.atgs
            if len(atgs) == 1:
                span = atgs[0].span()
                changed = span is not policy.span
            else:
                span = _EMPTY.union(*(g.span() for g in atgs))
                changed = span != policy.span
            if changed:
                policy.span = span
                ag_spans_dirty.update(policy.ags)
        ag_spans = self._ag_spans
        for group in ag_spans_dirty:
            atg_counts = self._ag_atgs.get(group)
            if atg_counts is None:
                continue
            if len(atg_counts) == 1:
                span = next(iter(atg_counts)).span()
            else:
                span = _EMPTY.union(*(g.span() for g in atg_counts))
            old = ag_spans.get(group)
            if old is None or (span is not old and span != old):
                ag_spans[group] = span
                pub_ags.add(group)

        for name in deleted:
            store.delete(ObjectKind.NETWORK_POLICY, name)
        for group in pub_atgs:
            if group in atg_refs:
                store.upsert(AppliedToGroup(group.name, group.frozen_members()), group.span())
                self._published_atgs.add(group)
        for group in pub_ags:
            if group in ag_refs:
                store.upsert(AddressGroup(group.name, group.address_members()), ag_spans[group])
                self._published_ags.add(group)
        for policy in policies:
            if live.get(policy.key) is not policy:
                continue
            if policy.obj is not policy.published_obj or policy.span is not policy.published_span:
                assert policy.span is not None
                store.upsert(policy.obj, policy.span)
                policy.published_obj = policy.obj
                policy.published_span = policy.span
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("published applied_to_groups=%d address_groups=%d policies=%d "
                         "deleted_policies=%d released_groups=%d", len(pub_atgs), len(pub_ags),
                         len(policies), len(deleted), len(released))
        for group in released:
            in_atg, in_ag = group in atg_refs, group in ag_refs
            if not in_atg and group in self._published_atgs:
                self._published_atgs.discard(group)
                store.delete(ObjectKind.APPLIED_TO_GROUP, group.name)
            if not in_ag and group in self._published_ags:
                self._published_ags.discard(group)
                store.delete(ObjectKind.ADDRESS_GROUP, group.name)
            if not in_atg and not in_ag:
                index.release(group)
