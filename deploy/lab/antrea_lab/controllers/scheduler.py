"""The default scheduler: bind pending pods to the feasible Node with the fewest pods.

Filtering (`filter_nodes`) and choice (`choose_node`) are plain functions; the
controller binds through the pods/binding subresource as kube-scheduler does and
records Unschedulable pods, retrying them when Nodes change.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from .informer import Controller, Informer, object_key
from .kubeclient import EVENTS, JSON, PODS, KubeClient
from .selectors import labels_of, matches_node_selector

SCHEDULER_NAME = "default-scheduler"
RETRY_UNSCHEDULABLE_AFTER = 30.0

REASON_NOT_READY = "node(s) were not ready"
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_TAINT = "node(s) had untolerated taint(s)"
REASON_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
REASON_FULL = "Too many pods"


def node_ready(node: JSON) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def tolerates(toleration: JSON, taint: JSON) -> bool:
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    op = toleration.get("operator", "Equal")
    if not key:
        return op == "Exists"  # an empty key with Exists tolerates everything
    if key != taint.get("key"):
        return False
    if op == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taints(pod: JSON, node: JSON) -> list[JSON]:
    """Taints that keep the pod off the node (PreferNoSchedule never does)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute")
            and not any(tolerates(tol, t) for tol in tolerations)]


def matches_placement(pod: JSON, node: JSON) -> bool:
    """spec.nodeSelector and requiredDuringSchedulingIgnoredDuringExecution."""
    spec = pod.get("spec") or {}
    labels = labels_of(node)
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    return not required or matches_node_selector(required, node)


def pod_capacity(node: JSON) -> int | None:
    value = ((node.get("status") or {}).get("allocatable") or {}).get("pods")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def filter_nodes(pod: JSON, nodes: Iterable[JSON], pod_counts: dict[str, int]
                 ) -> tuple[list[JSON], Counter[str]]:
    """Feasible nodes and, for the others, why not (first failing reason per node)."""
    ok, why = [], Counter[str]()
    for node in nodes:
        name = node["metadata"]["name"]
        if not node_ready(node):
            why[REASON_NOT_READY] += 1
        elif (node.get("spec") or {}).get("unschedulable") and not any(
                tolerates(t, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
                for t in (pod.get("spec") or {}).get("tolerations") or []):
            why[REASON_UNSCHEDULABLE] += 1
        elif untolerated_taints(pod, node):
            why[REASON_TAINT] += 1
        elif not matches_placement(pod, node):
            why[REASON_SELECTOR] += 1
        elif (cap := pod_capacity(node)) is not None and pod_counts.get(name, 0) >= cap:
            why[REASON_FULL] += 1
        else:
            ok.append(node)
    return ok, why


class Unschedulable(Exception):
    def __init__(self, message: str, reasons: Counter[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reasons = reasons or Counter()


def choose_node(pod: JSON, nodes: list[JSON], pod_counts: dict[str, int]) -> str:
    """The feasible node with the fewest pods (ties by name); raises Unschedulable."""
    feasible, why = filter_nodes(pod, nodes, pod_counts)
    if not feasible:
        detail = ", ".join(f"{n} {r}" for r, n in sorted(why.items()))
        message = f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ".")
        raise Unschedulable(message, why)
    best = min(feasible, key=lambda n: (pod_counts.get(n["metadata"]["name"], 0),
                                        n["metadata"]["name"]))
    return str(best["metadata"]["name"])


def needs_scheduling(pod: JSON) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName")
            and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


def pod_counts(pods: Iterable[JSON]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            counts[node] += 1
    return dict(counts)


def binding(pod: JSON, node_name: str) -> JSON:
    meta = pod["metadata"]
    return {"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                         "uid": meta.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unschedulable_conditions(pod: JSON, message: str) -> list[JSON] | None:
    """The pod's conditions with PodScheduled=False/Unschedulable, or None if already so."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    for cond in conditions:
        if (cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable" and cond.get("message") == message):
            return None
    kept = [c for c in conditions if c.get("type") != "PodScheduled"]
    return [*kept, {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastProbeTime": None, "lastTransitionTime": _now()}]


class SchedulerController(Controller):
    name = "scheduler"
    workers = 1  # one pod at a time, like kube-scheduler's scheduling cycle

    def __init__(self, client: KubeClient, pods: Informer, nodes: Informer) -> None:
        super().__init__()
        self.client = client
        self.pods, self.nodes = pods, nodes
        self._assumed: dict[str, str] = {}  # pod key -> node, bound but not yet observed
        self._unschedulable: set[str] = set()
        self._lock = threading.Lock()
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)

    def informers(self) -> list[Informer]:
        return [self.pods, self.nodes]

    def _on_pod(self, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        key = object_key(obj)
        if new is not None and needs_scheduling(new):
            self.queue.add(key)
            return
        with self._lock:
            if new is None or (new.get("spec") or {}).get("nodeName"):
                self._assumed.pop(key, None)
            self._unschedulable.discard(key)
        # A pod leaving a node (deleted or finished) may make room for waiting ones.
        if old is not None and (old.get("spec") or {}).get("nodeName") and (
                new is None or (new.get("status") or {}).get("phase") in ("Succeeded", "Failed")):
            self._retry_unschedulable()

    def _on_node(self, old: JSON | None, new: JSON | None) -> None:
        self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        with self._lock:
            keys = list(self._unschedulable)
        for key in keys:
            self.queue.add(key)

    def _counts(self) -> dict[str, int]:
        counts = pod_counts(self.pods.list())
        with self._lock:
            for key, node in self._assumed.items():
                cached = self.pods.get(key)
                if cached is None or not (cached.get("spec") or {}).get("nodeName"):
                    counts[node] = counts.get(node, 0) + 1
        return counts

    def reconcile(self, key: str) -> None:
        pod = self.pods.get(key)
        with self._lock:
            assumed = key in self._assumed
        if pod is None or not needs_scheduling(pod) or assumed:
            return
        nodes = self.nodes.list()
        try:
            node_name = choose_node(pod, nodes, self._counts())
        except Unschedulable as exc:
            self._mark_unschedulable(key, pod, exc.message)
            return
        ns, name = key.split("/", 1)
        try:
            self.client.request("POST", PODS.path(ns, name, "binding"),
                                body=binding(pod, node_name))
        except ApiException as exc:
            if exc.status in (404, 409):  # gone, or bound by someone else meanwhile
                self.log.info("binding skipped pod=%s status=%s", key, exc.status)
                return
            raise
        with self._lock:
            self._assumed[key] = node_name
            self._unschedulable.discard(key)
        self.log.info("bound pod=%s node=%s", key, node_name)

    def _mark_unschedulable(self, key: str, pod: JSON, message: str) -> None:
        with self._lock:
            self._unschedulable.add(key)
        self.queue.add_after(key, RETRY_UNSCHEDULABLE_AFTER)
        conditions = unschedulable_conditions(pod, message)
        if conditions is None:
            return
        self.log.info("unschedulable pod=%s message=%r", key, message)
        ns, name = key.split("/", 1)
        try:
            self.client.patch(PODS, name, {"status": {"conditions": conditions}}, namespace=ns,
                              subresource="status")
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        meta = pod["metadata"]
        try:
            self.client.create(EVENTS, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{name}.", "namespace": ns},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name,
                                   "namespace": ns, "uid": meta.get("uid")},
                "reason": "FailedScheduling", "message": message, "type": "Warning",
                "source": {"component": SCHEDULER_NAME}, "reportingComponent": SCHEDULER_NAME,
                "firstTimestamp": _now(), "lastTimestamp": _now(), "count": 1,
            }, namespace=ns)
        except ApiException as exc:  # an event is best effort
            self.log.warning("event failed pod=%s status=%s", key, exc.status)
