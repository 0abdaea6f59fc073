"""Namespace lifecycle: empty and finalize deleted Namespaces; give live ones their
"default" ServiceAccount and kube-root-ca.crt ConfigMap.

Deletion follows the API server's contract: a Namespace with a deletionTimestamp keeps
"kubernetes" in spec.finalizers until this controller has deleted every namespaced
object in it (every discovered resource, custom ones included) and then PUTs
/finalize; the API server removes the Namespace once no finalizer is left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException

from .informer import Controller, Informer
from .kubeclient import CONFIG_MAPS, JSON, NAMESPACES, SERVICE_ACCOUNTS, KubeClient, Resource

FINALIZER = "kubernetes"
ROOT_CA_NAME = "kube-root-ca.crt"
DEFAULT_SA = "default"
RECHECK_DELETION_AFTER = 1.0
DISCOVERY_TTL = 10.0


def deletable_resources(core: JSON, groups: list[JSON]) -> list[tuple[Resource, set[str]]]:
    """Namespaced, listable, deletable top-level resources from discovery documents
    (APIResourceList bodies: /api/v1 and each group's preferred version)."""
    out = []
    for doc in [core, *groups]:
        gv = doc.get("groupVersion", "v1")
        group, _, version = gv.rpartition("/")
        for res in doc.get("resources") or []:
            name = res.get("name", "")
            verbs = set(res.get("verbs") or [])
            if "/" in name or not res.get("namespaced"):
                continue
            if "list" not in verbs or not verbs & {"delete", "deletecollection"}:
                continue
            out.append((Resource(group, version, name, True, res.get("kind", "")), verbs))
    return out


def finalized(namespace: JSON) -> JSON:
    """The Namespace body for PUT /finalize: spec.finalizers without ours."""
    spec = dict(namespace.get("spec") or {})
    spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
    return {**namespace, "spec": spec}


def root_ca_configmap(namespace: str, ca_pem: str) -> JSON:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_NAME, "namespace": namespace,
                         "annotations": {"kubernetes.io/description":
                                         "Contains a CA bundle that can be used to verify the "
                                         "kube-apiserver when using internal endpoints."}},
            "data": {"ca.crt": ca_pem}}


def default_service_account(namespace: str) -> JSON:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SA, "namespace": namespace}}


class NamespaceController(Controller):
    name = "namespaces"
    workers = 2

    def __init__(self, client: KubeClient, namespaces: Informer, service_accounts: Informer,
                 config_maps: Informer, ca_pem: str) -> None:
        super().__init__()
        self.client = client
        self.namespaces, self.sas, self.cms = namespaces, service_accounts, config_maps
        self.ca_pem = ca_pem
        self._discovery: tuple[float, list[tuple[Resource, set[str]]]] | None = None
        self._discovery_lock = threading.Lock()
        self._last_remaining: dict[str, dict[str, int]] = {}
        namespaces.add_handler(self._on_namespace)
        service_accounts.add_handler(self._on_owned(DEFAULT_SA))
        config_maps.add_handler(self._on_owned(ROOT_CA_NAME))

    def informers(self) -> list[Informer]:
        return [self.namespaces, self.sas, self.cms]

    def _on_namespace(self, old: JSON | None, new: JSON | None) -> None:
        if new is not None:
            self.queue.add(new["metadata"]["name"])

    def _on_owned(self, name: str) -> Callable[[JSON | None, JSON | None], None]:
        def handler(old: JSON | None, new: JSON | None) -> None:
            obj = new if new is not None else old
            assert obj is not None
            if obj["metadata"].get("name") == name:
                self.queue.add(str(obj["metadata"].get("namespace")))
        return handler

    # -- discovery ----------------------------------------------------------------------

    def resources(self) -> list[tuple[Resource, set[str]]]:
        with self._discovery_lock:
            if self._discovery and time.monotonic() - self._discovery[0] < DISCOVERY_TTL:
                return self._discovery[1]
            core = self.client.request("GET", "/api/v1")
            groups = []
            for group in self.client.request("GET", "/apis").get("groups") or []:
                gv = (group.get("preferredVersion") or {}).get("groupVersion")
                if not gv and group.get("versions"):
                    gv = group["versions"][0].get("groupVersion")
                if not gv:
                    continue
                try:
                    groups.append(self.client.request("GET", f"/apis/{gv}"))
                except ApiException as exc:  # one broken group must not block deletion
                    self.log.warning("discovery failed group=%s status=%s", gv, exc.status)
            found = deletable_resources(core, groups)
            self._discovery = (time.monotonic(), found)
            return found

    # -- reconcile ------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None:
            return
        if ns["metadata"].get("deletionTimestamp"):
            if FINALIZER in ((ns.get("spec") or {}).get("finalizers") or []):
                self._delete_contents(key)
            return
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return
        self._ensure_service_account(key)
        self._ensure_root_ca(key)

    def _delete_contents(self, ns: str) -> None:
        remaining: dict[str, int] = {}
        for res, verbs in self.resources():
            try:
                left = self._delete_all(res, verbs, ns)
            except ApiException as exc:
                if exc.status in (404, 405):
                    continue  # resource went away or does not support it here
                raise
            if left:
                remaining[res.plural if not res.group else f"{res.plural}.{res.group}"] = left
        if remaining:
            if self._last_remaining.get(ns) != remaining:
                self.log.info("waiting for deletion namespace=%s remaining=%s", ns, remaining)
            self._last_remaining[ns] = remaining
            self.queue.add_after(ns, RECHECK_DELETION_AFTER)
            return
        try:
            current = self.client.get(NAMESPACES, ns)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if FINALIZER not in ((current.get("spec") or {}).get("finalizers") or []):
            return
        self._last_remaining.pop(ns, None)
        self.client.request("PUT", NAMESPACES.path(None, ns, "finalize"), body=finalized(current))
        self.log.info("finalized namespace=%s", ns)

    def _delete_all(self, res: Resource, verbs: set[str], ns: str) -> int:
        """Ask for deletion of everything of one resource; return how many still exist
        (pods linger until their kubelet confirms, finalizers hold others)."""
        items = self.client.list(res, namespace=ns)["items"]
        if not items:
            return 0
        pending = [o for o in items if not o["metadata"].get("deletionTimestamp")]
        if pending:
            if "deletecollection" in verbs:
                self.client.delete_collection(res, namespace=ns)
            else:
                for obj in pending:
                    try:
                        self.client.delete(res, obj["metadata"]["name"], namespace=ns)
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
        return len(self.client.list(res, namespace=ns)["items"])

    def _ensure_service_account(self, ns: str) -> None:
        if self.sas.get(f"{ns}/{DEFAULT_SA}") is not None:
            return
        try:
            self.client.create(SERVICE_ACCOUNTS, default_service_account(ns), namespace=ns)
            self.log.info("created serviceaccount namespace=%s name=%s", ns, DEFAULT_SA)
        except ApiException as exc:
            if exc.status not in (409, 403, 404):  # exists / namespace terminating or gone
                raise

    def _ensure_root_ca(self, ns: str) -> None:
        if not self.ca_pem:
            return
        want = root_ca_configmap(ns, self.ca_pem)
        current = self.cms.get(f"{ns}/{ROOT_CA_NAME}")
        if current is None:
            try:
                self.client.create(CONFIG_MAPS, want, namespace=ns)
                self.log.info("created configmap namespace=%s name=%s", ns, ROOT_CA_NAME)
            except ApiException as exc:
                if exc.status not in (409, 403, 404):
                    raise
        elif (current.get("data") or {}) != want["data"]:
            meta = {**current["metadata"], "annotations": want["metadata"]["annotations"]}
            try:
                self.client.replace(CONFIG_MAPS, {**want, "metadata": meta}, namespace=ns)
            except ApiException as exc:
                if exc.status not in (403, 404):
                    raise  # 409: stale copy, retried with the next cache version
                return
            self.log.info("updated configmap namespace=%s name=%s", ns, ROOT_CA_NAME)
