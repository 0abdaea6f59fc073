"""EndpointSlices and legacy Endpoints for Services with a selector.

The desired state is computed by plain functions from a Service, its Pods and the
Nodes (`desired_slices`, `desired_endpoints`, `plan_slices`); the controller only feeds
them from informer caches and writes the difference.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes.client.exceptions import ApiException

from .informer import Controller, Informer, object_key
from .kubeclient import ENDPOINT_SLICES, ENDPOINTS, JSON, KubeClient
from .selectors import labels_of, matches_map

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100
MAX_ENDPOINTS_ADDRESSES = 1000
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"

FAMILY_OF_TYPE = {"IPv4": 4, "IPv6": 6}
PortKey = tuple[tuple[str, int, str, str], ...]  # (name, port, protocol, appProtocol)


# -- pod facts ----------------------------------------------------------------------------

def pod_ready(pod: JSON) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_terminating(pod: JSON) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_ips(pod: JSON) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def pod_ip_of_family(pod: JSON, family: int) -> str | None:
    for ip in pod_ips(pod):
        try:
            if ipaddress.ip_address(ip).version == family:
                return ip
        except ValueError:
            continue
    return None


def pod_eligible(pod: JSON, include_terminating: bool) -> bool:
    """Whether a pod belongs in endpoints at all: it has an IP, has not finished for
    good, and (unless include_terminating) is not being deleted."""
    if not pod_ips(pod):
        return False
    if pod_terminating(pod) and not include_terminating:
        return False
    phase = (pod.get("status") or {}).get("phase")
    restart = (pod.get("spec") or {}).get("restartPolicy", "Always")
    if restart == "Never":
        return phase not in ("Failed", "Succeeded")
    if restart == "OnFailure":
        return phase != "Succeeded"
    return True


# -- service facts ------------------------------------------------------------------------

def service_selector(service: JSON) -> dict[str, str]:
    return (service.get("spec") or {}).get("selector") or {}


def address_types(service: JSON) -> list[str]:
    """The slice address types a Service needs, from spec.ipFamilies (or its clusterIPs)."""
    spec = service.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or [] if f in FAMILY_OF_TYPE]
    if families:
        return families
    types = []
    for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
        try:
            types.append(f"IPv{ipaddress.ip_address(ip).version}")
        except ValueError:
            continue  # "None" for headless services
    return types or ["IPv4"]


def find_container_port(pod: JSON, name: str, protocol: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def resolve_ports(service: JSON, pod: JSON) -> PortKey:
    """The Service's ports as this pod serves them: a named targetPort resolves through
    the pod's container ports; a pod not exposing that name gets no such port."""
    ports = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        protocol = sp.get("protocol", "TCP")
        target = sp.get("targetPort", sp.get("port"))
        if isinstance(target, str) and not target.isdigit():
            number = find_container_port(pod, target, protocol)
            if number is None:
                continue
        else:
            number = int(target) if target not in (None, 0, "0") else int(sp["port"])
        ports.append((sp.get("name", ""), number, protocol, sp.get("appProtocol", "")))
    return tuple(sorted(ports))


def _port_dicts(key: PortKey) -> list[JSON]:
    out = []
    for name, port, protocol, app in key:
        entry: JSON = {"name": name, "port": port, "protocol": protocol}
        if app:
            entry["appProtocol"] = app
        out.append(entry)
    return out


def _target_ref(pod: JSON) -> JSON:
    meta = pod.get("metadata") or {}
    return {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
            "uid": meta.get("uid")}


def _pod_hostname(service: JSON, pod: JSON) -> str | None:
    """A pod gets a DNS hostname in a Service when its subdomain names that Service."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        return str(spec["hostname"])
    return None


def select_pods(service: JSON, pods: Iterable[JSON]) -> list[JSON]:
    selector = service_selector(service)
    ns = service["metadata"].get("namespace")
    return [p for p in pods
            if p["metadata"].get("namespace") == ns and matches_map(selector, labels_of(p))]


# -- desired EndpointSlices ---------------------------------------------------------------

def desired_slices(service: JSON, pods: Iterable[JSON], nodes: dict[str, JSON],
                   max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> list[JSON]:
    """Slice bodies (addressType, ports, endpoints; no metadata) for a Service: one group
    per (address type, resolved port set), each cut into chunks of max_per_slice."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple[str, PortKey], list[JSON]] = {}
    for addr_type in address_types(service):
        for pod in select_pods(service, pods):
            if not pod_eligible(pod, include_terminating=True):
                continue
            ip = pod_ip_of_family(pod, FAMILY_OF_TYPE[addr_type])
            if ip is None:
                continue
            terminating = pod_terminating(pod)
            serving = pod_ready(pod)
            # "ready" is never true for a terminating pod unless publishNotReadyAddresses.
            endpoint: JSON = {
                "addresses": [ip],
                "conditions": {"ready": publish or (serving and not terminating),
                               "serving": serving, "terminating": terminating},
                "targetRef": _target_ref(pod),
            }
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name:
                endpoint["nodeName"] = node_name
                zone = labels_of(nodes.get(node_name) or {}).get(ZONE_LABEL)
                if zone:
                    endpoint["zone"] = zone
            hostname = _pod_hostname(service, pod)
            if hostname:
                endpoint["hostname"] = hostname
            groups.setdefault((addr_type, resolve_ports(service, pod)), []).append(endpoint)
    slices = []
    for (addr_type, ports), endpoints in sorted(groups.items()):
        endpoints.sort(key=lambda e: _ip_sort_key(e["addresses"][0]))
        for i in range(0, len(endpoints), max_per_slice):
            slices.append({"addressType": addr_type, "ports": _port_dicts(ports),
                           "endpoints": endpoints[i:i + max_per_slice]})
    if not slices:
        # Kubernetes keeps one empty placeholder slice per Service with a selector so
        # consumers can tell "no endpoints" from "not processed yet".
        slices.append({"addressType": address_types(service)[0], "ports": [],
                       "endpoints": []})
    return slices


def _ip_sort_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)


def slice_labels(service: JSON) -> dict[str, str]:
    labels = {k: v for k, v in labels_of(service).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)}
    labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def owner_reference(service: JSON) -> JSON:
    meta = service["metadata"]
    return {"apiVersion": "v1", "kind": "Service", "name": meta["name"], "uid": meta.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def slice_object(service: JSON, body: JSON) -> JSON:
    meta = service["metadata"]
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                     "labels": slice_labels(service),
                     "ownerReferences": [owner_reference(service)]},
        **body,
    }


def _slice_content(obj: JSON) -> tuple[Any, ...]:
    return (obj.get("addressType"), obj.get("ports") or [], obj.get("endpoints") or [])


def _slice_group(obj: JSON) -> tuple[str, PortKey]:
    ports = tuple(sorted((p.get("name", ""), int(p.get("port", 0)), p.get("protocol", "TCP"),
                          p.get("appProtocol", "")) for p in obj.get("ports") or []))
    return obj.get("addressType", ""), ports


def plan_slices(service: JSON, desired: list[JSON], existing: list[JSON]
                ) -> tuple[list[JSON], list[JSON], list[JSON]]:
    """(to create, to update, to delete): existing slices of the same group are reused in
    name order so that unchanged chunks cause no writes."""
    by_group: dict[tuple[str, PortKey], list[JSON]] = {}
    for obj in sorted(existing, key=lambda o: o["metadata"]["name"]):
        by_group.setdefault(_slice_group(obj), []).append(obj)
    want_labels = slice_labels(service)
    want_owner = [owner_reference(service)]
    updates: list[JSON] = []
    unmatched: list[JSON] = []
    for body in desired:
        pool = by_group.get(_slice_group(body)) or []
        if pool:
            _update_if_changed(pool.pop(0), body, want_labels, want_owner, updates)
        else:
            unmatched.append(body)
    # Slices left over from other port groups (e.g. the empty placeholder) are rewritten
    # rather than deleted and recreated: fewer writes, fewer watch events.
    leftovers = [obj for pool in by_group.values() for obj in pool]
    creates = []
    for body in unmatched:
        same_type = next((o for o in leftovers if o.get("addressType") == body["addressType"]),
                         None)
        if same_type is None:
            creates.append(slice_object(service, body))
        else:
            leftovers.remove(same_type)
            _update_if_changed(same_type, body, want_labels, want_owner, updates)
    return creates, updates, leftovers


def _update_if_changed(current: JSON, body: JSON, labels: dict[str, str], owner: list[JSON],
                       updates: list[JSON]) -> None:
    meta = current["metadata"]
    if (_slice_content(current) != _slice_content(body) or meta.get("labels") != labels
            or meta.get("ownerReferences") != owner):
        updates.append({**current, **body,
                        "metadata": {**meta, "labels": labels, "ownerReferences": owner}})


# -- desired legacy Endpoints -------------------------------------------------------------

def desired_endpoints(service: JSON, pods: Iterable[JSON]) -> JSON:
    """The core/v1 Endpoints object: the Service's primary IP family, subsets grouped by
    resolved port set; terminating pods only with publishNotReadyAddresses."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    family = FAMILY_OF_TYPE[address_types(service)[0]]
    subsets: dict[PortKey, dict[str, list[JSON]]] = {}
    total = 0
    for pod in select_pods(service, pods):
        if not pod_eligible(pod, include_terminating=publish):
            continue
        ip = pod_ip_of_family(pod, family)
        if ip is None:
            continue
        address: JSON = {"ip": ip, "targetRef": _target_ref(pod)}
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            address["nodeName"] = node_name
        hostname = _pod_hostname(service, pod)
        if hostname:
            address["hostname"] = hostname
        bucket = subsets.setdefault(resolve_ports(service, pod),
                                    {"addresses": [], "notReadyAddresses": []})
        ready = pod_ready(pod) or publish
        bucket["addresses" if ready else "notReadyAddresses"].append(address)
        total += 1
    out = []
    for ports, bucket in sorted(subsets.items()):
        subset: JSON = {}
        for field in ("addresses", "notReadyAddresses"):
            if bucket[field]:
                subset[field] = sorted(bucket[field], key=lambda a: _ip_sort_key(a["ip"]))
        if ports:
            subset["ports"] = _port_dicts(ports)
        out.append(subset)
    annotations = {}
    if total > MAX_ENDPOINTS_ADDRESSES:
        out = _truncate(out, MAX_ENDPOINTS_ADDRESSES)
        annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
    meta = service["metadata"]
    obj: JSON = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                              "labels": dict(labels_of(service))},
                 "subsets": out}
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj


def _truncate(subsets: list[JSON], limit: int) -> list[JSON]:
    left = limit
    out = []
    for subset in subsets:
        kept = dict(subset)
        for field in ("addresses", "notReadyAddresses"):
            items = subset.get(field) or []
            kept[field] = items[:left]
            left -= len(kept[field])
            if not kept[field]:
                kept.pop(field)
        if kept.get("addresses") or kept.get("notReadyAddresses"):
            out.append(kept)
    return out


def endpoints_differ(current: JSON, want: JSON) -> bool:
    cm, wm = current.get("metadata") or {}, want["metadata"]
    return ((current.get("subsets") or []) != want["subsets"]
            or (cm.get("labels") or {}) != wm.get("labels")
            or (cm.get("annotations") or {}).get(OVER_CAPACITY_ANNOTATION)
            != (wm.get("annotations") or {}).get(OVER_CAPACITY_ANNOTATION))


# -- controller ---------------------------------------------------------------------------

def by_namespace(obj: JSON) -> list[str]:
    return [str(obj["metadata"].get("namespace", ""))]


def by_node_name(obj: JSON) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def by_service_name(obj: JSON) -> list[str]:
    name = labels_of(obj).get(SERVICE_NAME_LABEL)
    return [f"{obj['metadata'].get('namespace')}/{name}"] if name else []


def rv_reached(current: str | None, expected: str) -> bool:
    """Whether a cached resourceVersion is at least the one we wrote. Versions are opaque
    in general; the lab's (like etcd's) are integers, so compare numerically when we can."""
    if current is None:
        return False
    if current == expected:
        return True
    try:
        return int(current) >= int(expected)
    except ValueError:
        return False


class WriteTracker:
    """Slice writes not yet seen in the cache, per Service: reconciling on a cache that
    misses our own creates would create duplicates. The watch event may arrive before
    expect() is called, so pending writes are checked against the cache itself."""

    def __init__(self, expiry: float = 10.0) -> None:
        self._pending: dict[str, dict[str, tuple[str | None, float]]] = {}
        self._lock = threading.Lock()
        self.expiry = expiry

    def expect(self, service_key: str, slice_name: str, rv: str | None) -> None:
        """rv None means we deleted it."""
        with self._lock:
            self._pending.setdefault(service_key, {})[slice_name] = (rv, time.monotonic())

    def waiting(self, service_key: str, cached: Callable[[str], JSON | None]) -> bool:
        """cached(slice_name) -> the informer's copy (or None)."""
        with self._lock:
            pending = self._pending.get(service_key)
            if not pending:
                return False
            now = time.monotonic()
            for name, (rv, t) in list(pending.items()):
                obj = cached(name)
                seen = obj is None if rv is None else (
                    obj is not None and rv_reached(obj["metadata"].get("resourceVersion"), rv))
                if seen or now - t > self.expiry:
                    del pending[name]
            if not pending:
                del self._pending[service_key]
                return False
            return True


class EndpointSliceController(Controller):
    name = "endpointslices"
    workers = 2

    def __init__(self, client: KubeClient, services: Informer, pods: Informer,
                 nodes: Informer, slices: Informer) -> None:
        super().__init__()
        self.client = client
        self.services, self.pods, self.nodes, self.slices = services, pods, nodes, slices
        self.tracker = WriteTracker()
        services.add_index("namespace", by_namespace)
        pods.add_index("namespace", by_namespace)
        pods.add_index("nodeName", by_node_name)
        slices.add_index("service", by_service_name)
        services.add_handler(self._on_service)
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)
        slices.add_handler(self._on_slice)

    def informers(self) -> list[Informer]:
        return [self.services, self.pods, self.nodes, self.slices]

    # -- event mapping ------------------------------------------------------------------

    def _on_service(self, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        self.queue.add(object_key(obj))

    def _services_selecting(self, pod: JSON) -> list[str]:
        ns = pod["metadata"].get("namespace", "")
        labels = labels_of(pod)
        return [object_key(s) for s in self.services.by_index("namespace", ns)
                if matches_map(service_selector(s), labels)]

    def _on_pod(self, old: JSON | None, new: JSON | None) -> None:
        keys: set[str] = set()
        for pod in (old, new):
            if pod is not None:
                keys.update(self._services_selecting(pod))
        for key in keys:
            self.queue.add(key)

    def _on_node(self, old: JSON | None, new: JSON | None) -> None:
        if old is not None and new is not None and \
                labels_of(old).get(ZONE_LABEL) == labels_of(new).get(ZONE_LABEL):
            return
        obj = new if new is not None else old
        assert obj is not None
        for pod in self.pods.by_index("nodeName", obj["metadata"]["name"]):
            for key in self._services_selecting(pod):
                self.queue.add(key)

    def _on_slice(self, old: JSON | None, new: JSON | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        for key in by_service_name(obj):
            self.queue.add(key)

    # -- reconcile ------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        ns, name = key.split("/", 1)
        if self.tracker.waiting(key, lambda slice_name: self.slices.get(f"{ns}/{slice_name}")):
            self.queue.add_after(key, 0.2)
            return
        service = self.services.get(key)
        existing = [s for s in self.slices.by_index("service", key)
                    if labels_of(s).get(MANAGED_BY_LABEL) == MANAGED_BY]
        if service is None or not service_selector(service):
            for obj in existing:
                self._delete_slice(key, obj)
            if service is None:
                self._delete_endpoints(ns, name)
            return
        pods = self.pods.by_index("namespace", ns)
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        creates, updates, deletes = plan_slices(service, desired_slices(service, pods, nodes),
                                                existing)
        try:
            self._write_slices(key, ns, creates, updates)
        except ApiException as exc:
            if exc.status == 403 and self._namespace_terminating(exc):
                return  # everything in it is being deleted; nothing to maintain
            raise
        for obj in deletes:
            self._delete_slice(key, obj)
        if creates or updates or deletes:
            self.log.info("synced service=%s created=%d updated=%d deleted=%d", key,
                          len(creates), len(updates), len(deletes))
        try:
            self._sync_endpoints(service, pods)
        except ApiException as exc:
            if not (exc.status == 403 and self._namespace_terminating(exc)):
                raise

    @staticmethod
    def _namespace_terminating(exc: ApiException) -> bool:
        return "terminat" in str(exc.body or exc.reason or "").lower()

    def _write_slices(self, key: str, ns: str, creates: list[JSON], updates: list[JSON]
                      ) -> None:
        for obj in creates:
            made = self.client.create(ENDPOINT_SLICES, obj, namespace=ns)
            self.tracker.expect(key, made["metadata"]["name"],
                                made["metadata"].get("resourceVersion"))
        for obj in updates:
            made = self.client.replace(ENDPOINT_SLICES, obj, namespace=ns)
            self.tracker.expect(key, made["metadata"]["name"],
                                made["metadata"].get("resourceVersion"))

    def _delete_slice(self, key: str, obj: JSON) -> None:
        name = obj["metadata"]["name"]
        try:
            self.client.delete(ENDPOINT_SLICES, name, namespace=obj["metadata"].get("namespace"))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        self.tracker.expect(key, name, None)
        self.log.info("deleted slice=%s service=%s", name, key)

    def _delete_endpoints(self, ns: str, name: str) -> None:
        try:
            self.client.delete(ENDPOINTS, name, namespace=ns)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _sync_endpoints(self, service: JSON, pods: list[JSON]) -> None:
        want = desired_endpoints(service, pods)
        ns, name = want["metadata"]["namespace"], want["metadata"]["name"]
        try:
            current = self.client.get(ENDPOINTS, name, namespace=ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.client.create(ENDPOINTS, want, namespace=ns)
            return
        if not endpoints_differ(current, want):
            return
        meta = dict(current.get("metadata") or {})
        meta["labels"] = want["metadata"]["labels"]
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k != OVER_CAPACITY_ANNOTATION}
        annotations.update(want["metadata"].get("annotations") or {})
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        self.client.replace(ENDPOINTS, {**want, "metadata": meta}, namespace=ns)
