"""Group membership kept current by label indexes.

One `Group` per distinct (namespace scope, pod selector, namespace selector), shared by
every policy that uses that selector. Changes touch only what they can affect:

- a new pod is evaluated against the groups of its namespace (and the cluster-scoped groups
  whose namespace selector matches its namespace) that mention one of its label keys or
  have no positive requirement; a pod label change re-evaluates only groups mentioning a
  changed key; a pod delete walks the pod's own group set;
- a namespace label change re-evaluates only cluster-scoped groups whose namespace selector
  mentions a changed key, then only that namespace's pods;
- a new group looks up its candidate pods (or namespaces) through a label index by one
  positive requirement (its `anchor`), so a group creation does not scan every pod.

Membership and span changes are not published here: groups whose members changed land in
`dirty_members`, groups whose node set changed in `dirty_span`, and the caller drains both
once per batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping

from antrea_core.apis.controlplane import GroupMember
from antrea_core.controller.grouping.selectors import EXISTS, IN, LabelSelector

# (namespace or None for cluster scope, pod selector key, namespace selector key or None)
GroupKey = tuple[str | None, tuple, tuple | None]

def group_name(key: GroupKey) -> str:
    """Stable name from the normalized selector: the same selector gets the same name after
    a controller restart, so reconnecting agents can resume. UUID-shaped like Antrea's
    (a hash of the key; uuid.uuid5 costs 3x more for the same property)."""
    h = hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class PodRecord:
    """An eligible pod (see `pods.pod_member`) as the index knows it."""

    __slots__ = ("groups", "labels", "member", "name", "namespace")

    def __init__(self, namespace: str, name: str, labels: Mapping[str, str],
                 member: GroupMember) -> None:
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.member = member
        self.groups: set[Group] = set()


class Group:
    """Pods selected by one normalized selector. `members` maps pod → its interned member;
    `node_count` counts members per node, so the span is its key set."""

    __slots__ = ("_addresses", "_frozen", "_ipless", "_member_set", "_span", "key",
                 "matched_ns", "members", "name", "namespace", "node_count", "ns_selector",
                 "pod_selector")

    def __init__(self, key: GroupKey, namespace: str | None, pod_selector: LabelSelector,
                 ns_selector: LabelSelector | None) -> None:
        self.key = key
        self.name = group_name(key)
        self.namespace = namespace
        self.pod_selector = pod_selector
        self.ns_selector = ns_selector
        self.members: dict[PodRecord, GroupMember] = {}
        # The same members as a set: a set keeps each entry's hash, so building the
        # published frozenset from it does not call GroupMember.__hash__ (a Python-level
        # dataclass hash) again for every member of a 10,000-member group.
        self._member_set: set[GroupMember] = set()
        self.node_count: dict[str, int] = {}
        self.matched_ns: set[str] = set()  # cluster-scoped groups: namespaces selected
        self._frozen: frozenset[GroupMember] | None = None
        self._span: frozenset[str] | None = None
        self._ipless = 0  # members of scheduled pods that have no IP yet
        # (frozen_members() it was computed from, those members that have IPs)
        self._addresses: tuple[frozenset[GroupMember], frozenset[GroupMember]] | None = None

    def frozen_members(self) -> frozenset[GroupMember]:
        """The member set as published in AppliedToGroups; rebuilt only after a
        membership change."""
        if self._frozen is None:
            self._frozen = frozenset(self._member_set)
        return self._frozen

    def address_members(self) -> frozenset[GroupMember]:
        """The members published in AddressGroups: those with IPs (the same object as
        `frozen_members()` unless some pod has no IP yet)."""
        frozen = self.frozen_members()
        if not self._ipless:
            return frozen
        cached = self._addresses
        if cached is None or cached[0] is not frozen:
            cached = self._addresses = (frozen, frozenset(m for m in frozen if m.ips))
        return cached[1]

    def span(self) -> frozenset[str]:
        """Nodes of the members; the same object until the node set changes."""
        if self._span is None:
            self._span = frozenset(self.node_count)
        return self._span

    def describe(self) -> str:
        where = (f"namespace={self.namespace}" if self.ns_selector is None
                 else f"namespaceSelector=[{self.ns_selector.describe()}]")
        return f"{where} podSelector=[{self.pod_selector.describe()}]"

    def __repr__(self) -> str:
        return f"Group({self.name} {self.describe()} members={len(self.members)})"


class _LabelIndex:
    """Objects (pods of one namespace, or namespace names) by label key and value."""

    __slots__ = ("all", "by_label")

    def __init__(self) -> None:
        self.all: set = set()
        self.by_label: dict[str, dict[str, set]] = {}

    def add(self, obj: object, labels: Mapping[str, str]) -> None:
        self.all.add(obj)
        by_label = self.by_label
        for k, v in labels.items():
            values = by_label.get(k)
            if values is None:
                by_label[k] = {v: {obj}}
                continue
            objs = values.get(v)
            if objs is None:
                values[v] = {obj}
            else:
                objs.add(obj)

    def remove(self, obj: object, labels: Mapping[str, str]) -> None:
        self.all.discard(obj)
        for k, v in labels.items():
            values = self.by_label.get(k)
            if values is None:
                continue
            objs = values.get(v)
            if objs is not None:
                objs.discard(obj)
                if not objs:
                    del values[v]
                    if not values:
                        del self.by_label[k]

    def candidates(self, selector: LabelSelector) -> Iterable:
        """A superset of the objects `selector` matches (exact when it is one equality).
        Callers must not change this index while iterating the result."""
        anchor = selector.anchor
        if anchor is None:
            return self.all
        values = self.by_label.get(anchor[0])
        if not values:
            return ()
        if anchor[1] is None:
            return [obj for objs in values.values() for obj in objs]
        if len(anchor[1]) == 1:
            return values.get(anchor[1][0], ())
        return [obj for v in anchor[1] for obj in values.get(v, ())]


class _SelectorIndex:
    """Groups by the requirements of one of their selectors, so that a new object is
    evaluated only against groups it may match, and a label change only against groups
    whose result it may change:

    - `eq[(key, value)]`: groups with an `In` requirement on key listing value (matchLabels
      are `In` with one value) — a change of key from v1 to v2 cannot change an `In`
      requirement listing neither;
    - `other[key]`: groups with a NotIn/Exists/DoesNotExist requirement on key;
    - `exists[key]`: groups whose only positive requirements are Exists;
    - `unanchored`: groups without a positive requirement (they may match anything).
    """

    __slots__ = ("eq", "exists", "other", "unanchored")

    def __init__(self) -> None:
        self.eq: dict[tuple[str, str], set[Group]] = {}
        self.other: dict[str, set[Group]] = {}
        self.exists: dict[str, set[Group]] = {}
        self.unanchored: set[Group] = set()

    @staticmethod
    def _entries(selector: LabelSelector) -> Iterator[tuple[dict, object]]:
        has_in = any(op == IN for _, op, _ in selector.key)
        for k, op, values in selector.key:
            if op == IN:
                for v in values:
                    yield "eq", (k, v)
            else:
                yield "other", k
                if op == EXISTS and not has_in:
                    yield "exists", k

    def add(self, group: Group, selector: LabelSelector) -> None:
        for table, key in self._entries(selector):
            getattr(self, table).setdefault(key, set()).add(group)
        if selector.anchor is None:
            self.unanchored.add(group)

    def remove(self, group: Group, selector: LabelSelector) -> None:
        for table, key in self._entries(selector):
            index = getattr(self, table)
            groups = index.get(key)
            if groups is not None:
                groups.discard(group)
                if not groups:
                    del index[key]
        self.unanchored.discard(group)

    def __bool__(self) -> bool:
        return bool(self.eq or self.other or self.unanchored)

    def for_labels(self, labels: Mapping[str, str]) -> set[Group]:
        """Groups that may select an object with these labels."""
        result = set(self.unanchored)
        eq, exists = self.eq, self.exists
        for item in labels.items():
            groups = eq.get(item)
            if groups:
                result |= groups
        if exists:
            for k in labels:
                groups = exists.get(k)
                if groups:
                    result |= groups
        return result

    def for_change(self, old: Mapping[str, str], new: Mapping[str, str],
                   changed: Iterable[str]) -> set[Group]:
        """Groups whose result may differ between labels `old` and `new`."""
        result: set[Group] = set()
        eq, other = self.eq, self.other
        for k in changed:
            for v in (old.get(k), new.get(k)):
                if v is not None:
                    groups = eq.get((k, v))
                    if groups:
                        result |= groups
            groups = other.get(k)
            if groups:
                result |= groups
        return result


def _changed_keys(old: Mapping[str, str], new: Mapping[str, str]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


class GroupIndex:
    """Pods, namespaces and groups; see the module docstring. `evaluations` counts selector
    evaluations (tests and benchmarks use it to check that indexes narrow the work)."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], PodRecord] = {}
        self._ns_pods: dict[str, _LabelIndex] = {}
        self._namespaces: dict[str, Mapping[str, str]] = {}
        self._ns_index = _LabelIndex()
        self._groups: dict[GroupKey, Group] = {}
        self._scoped: dict[str, _SelectorIndex] = {}
        self._cluster = _SelectorIndex()
        self._cluster_ns = _SelectorIndex()
        self._ns_groups: dict[str, set[Group]] = {}
        self.dirty_members: set[Group] = set()
        self.dirty_span: set[Group] = set()
        self.evaluations = 0

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._groups)

    def groups(self) -> Iterable[Group]:
        return self._groups.values()

    def pod_count(self) -> int:
        return len(self._pods)

    def pod_member(self, namespace: str, name: str) -> GroupMember | None:
        rec = self._pods.get((namespace, name))
        return rec.member if rec is not None else None

    def pod_groups(self, namespace: str, name: str) -> set[Group]:
        rec = self._pods.get((namespace, name))
        return set(rec.groups) if rec is not None else set()

    # -- groups ----------------------------------------------------------------------------

    def acquire(self, namespace: str, pod_selector: LabelSelector,
                ns_selector: LabelSelector | None) -> Group:
        """The group for this selector, created (with its members) if new. Without a
        namespace selector the pod selector applies in `namespace`; with one it applies
        in every namespace the namespace selector matches."""
        if ns_selector is None:
            key: GroupKey = (namespace, pod_selector.key, None)
        else:
            key = (None, pod_selector.key, ns_selector.key)
        group = self._groups.get(key)
        if group is not None:
            return group
        group = Group(key, key[0], pod_selector, ns_selector)
        self._groups[key] = group
        # New groups are published even when empty.
        self.dirty_members.add(group)
        self.dirty_span.add(group)
        if ns_selector is None:
            scoped = self._scoped.get(namespace)
            if scoped is None:
                scoped = self._scoped[namespace] = _SelectorIndex()
            scoped.add(group, pod_selector)
            pods = self._ns_pods.get(namespace)
            if pods is not None:
                self._add_matching(group, pods)
        else:
            self._cluster.add(group, pod_selector)
            self._cluster_ns.add(group, ns_selector)
            candidates = list(self._ns_index.candidates(ns_selector))
            self.evaluations += len(candidates)
            for ns in candidates:
                if ns_selector.matches(self._namespaces[ns]):
                    self._ns_match(group, ns)
        return group

    def release(self, group: Group) -> None:
        """Forget a group no policy references any more."""
        if self._groups.get(group.key) is not group:
            return
        del self._groups[group.key]
        for rec in group.members:
            rec.groups.discard(group)
        if group.ns_selector is None:
            scoped = self._scoped.get(group.namespace or "")
            if scoped is not None:
                scoped.remove(group, group.pod_selector)
                if not scoped:
                    del self._scoped[group.namespace or ""]
        else:
            self._cluster.remove(group, group.pod_selector)
            self._cluster_ns.remove(group, group.ns_selector)
            for ns in group.matched_ns:
                groups = self._ns_groups.get(ns)
                if groups is not None:
                    groups.discard(group)
        self.dirty_members.discard(group)
        self.dirty_span.discard(group)

    # -- pods ------------------------------------------------------------------------------

    def set_pod(self, namespace: str, name: str, labels: Mapping[str, str],
                member: GroupMember | None) -> None:
        """Add, update or (member None: not eligible any more) remove a pod."""
        rec = self._pods.get((namespace, name))
        if member is None:
            if rec is not None:
                self.remove_pod(namespace, name)
            return
        if rec is None:
            self._add_pod(namespace, name, labels, member)
            return
        if member is not rec.member and member != rec.member:
            old = rec.member
            rec.member = member
            for group in rec.groups:
                self._replace(group, rec, old, member)
        else:
            member = rec.member
        if labels != rec.labels:
            old_labels = rec.labels
            changed = _changed_keys(old_labels, labels)
            pods = self._ns_pods[namespace]
            pods.remove(rec, old_labels)
            rec.labels = labels
            pods.add(rec, labels)
            candidates: set[Group] = set()
            scoped = self._scoped.get(namespace)
            if scoped is not None:
                candidates = scoped.for_change(old_labels, labels, changed)
            ns_groups = self._ns_groups.get(namespace)
            if ns_groups:
                candidates |= self._cluster.for_change(old_labels, labels, changed) & ns_groups
            self.evaluations += len(candidates)
            for group in candidates:
                now = group.pod_selector.matches(labels)
                if now != (group in rec.groups):
                    if now:
                        self._join(group, rec)
                    else:
                        self._leave(group, rec)

    def remove_pod(self, namespace: str, name: str) -> None:
        rec = self._pods.pop((namespace, name), None)
        if rec is None:
            return
        for group in list(rec.groups):
            self._leave(group, rec)
        pods = self._ns_pods[namespace]
        pods.remove(rec, rec.labels)
        if not pods.all:
            del self._ns_pods[namespace]

    def _add_pod(self, namespace: str, name: str, labels: Mapping[str, str],
                 member: GroupMember) -> None:
        rec = PodRecord(namespace, name, labels, member)
        self._pods[(namespace, name)] = rec
        pods = self._ns_pods.get(namespace)
        if pods is None:
            pods = self._ns_pods[namespace] = _LabelIndex()
        pods.add(rec, labels)
        scoped = self._scoped.get(namespace)
        candidates = scoped.for_labels(labels) if scoped is not None else set()
        ns_groups = self._ns_groups.get(namespace)
        if ns_groups:
            candidates |= self._cluster.for_labels(labels) & ns_groups
        self.evaluations += len(candidates)
        for group in candidates:
            if group.pod_selector.matches(labels):
                self._join(group, rec)

    # -- namespaces ------------------------------------------------------------------------

    def set_namespace(self, name: str, labels: Mapping[str, str] | None) -> None:
        """Add, update or (labels None) remove a namespace."""
        old = self._namespaces.get(name)
        if labels is None:
            if old is None:
                return
            del self._namespaces[name]
            self._ns_index.remove(name, old)
            for group in self._ns_groups.pop(name, set()):
                self._ns_unmatch(group, name)
            return
        if old is None:
            self._namespaces[name] = labels
            self._ns_index.add(name, labels)
            candidates = self._cluster_ns.for_labels(labels)
            self.evaluations += len(candidates)
            for group in candidates:
                assert group.ns_selector is not None
                if group.ns_selector.matches(labels):
                    self._ns_match(group, name)
            return
        if labels == old:
            return
        self._ns_index.remove(name, old)
        self._namespaces[name] = labels
        self._ns_index.add(name, labels)
        candidates = self._cluster_ns.for_change(old, labels, _changed_keys(old, labels))
        self.evaluations += len(candidates)
        for group in candidates:
            assert group.ns_selector is not None
            now = group.ns_selector.matches(labels)
            if now != (name in group.matched_ns):
                if now:
                    self._ns_match(group, name)
                else:
                    self._ns_unmatch(group, name)

    def _ns_match(self, group: Group, ns: str) -> None:
        group.matched_ns.add(ns)
        groups = self._ns_groups.get(ns)
        if groups is None:
            self._ns_groups[ns] = {group}
        else:
            groups.add(group)
        pods = self._ns_pods.get(ns)
        if pods is not None:
            self._add_matching(group, pods)

    def _ns_unmatch(self, group: Group, ns: str) -> None:
        group.matched_ns.discard(ns)
        groups = self._ns_groups.get(ns)
        if groups is not None:
            groups.discard(group)
        pods = self._ns_pods.get(ns)
        if pods is not None:
            for rec in [r for r in pods.candidates(group.pod_selector) if group in r.groups]:
                self._leave(group, rec)

    # -- membership ------------------------------------------------------------------------

    def _add_matching(self, group: Group, pods: _LabelIndex) -> None:
        candidates = pods.candidates(group.pod_selector)
        self.evaluations += len(candidates)  # type: ignore[arg-type]
        matches = group.pod_selector.matches
        for rec in candidates:
            if matches(rec.labels):
                self._join(group, rec)

    def _join(self, group: Group, rec: PodRecord) -> None:
        member = rec.member
        group.members[rec] = member
        group._member_set.add(member)
        if not member.ips:
            group._ipless += 1
        rec.groups.add(group)
        group._frozen = None
        self.dirty_members.add(group)
        counts = group.node_count
        node = member.node
        n = counts.get(node, 0)
        counts[node] = n + 1
        if n == 0:
            group._span = None
            self.dirty_span.add(group)

    def _leave(self, group: Group, rec: PodRecord) -> None:
        member = group.members.pop(rec)
        group._member_set.discard(member)
        if not member.ips:
            group._ipless -= 1
        rec.groups.discard(group)
        group._frozen = None
        self.dirty_members.add(group)
        self._uncount(group, member.node)

    def _replace(self, group: Group, rec: PodRecord, old: GroupMember,
                 new: GroupMember) -> None:
        group.members[rec] = new
        group._member_set.discard(old)
        group._member_set.add(new)
        group._ipless += (not new.ips) - (not old.ips)
        group._frozen = None
        self.dirty_members.add(group)
        if old.node != new.node:
            counts = group.node_count
            n = counts.get(new.node, 0)
            counts[new.node] = n + 1
            if n == 0:
                group._span = None
                self.dirty_span.add(group)
            self._uncount(group, old.node)

    def _uncount(self, group: Group, node: str) -> None:
        counts = group.node_count
        n = counts[node] - 1
        if n:
            counts[node] = n
        else:
            del counts[node]
            group._span = None
            self.dirty_span.add(group)
