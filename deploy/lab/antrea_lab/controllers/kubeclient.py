"""JSON-over-REST access to the API server through the official `kubernetes` client.

Controllers work on plain dicts (what the API server sends) rather than the generated
models: reconcile logic stays testable with literal dicts and custom resources need no
model. The official client still does all the transport work: kubeconfig loading, TLS,
bearer-token auth, connection pooling and ApiException construction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("antrea.lab.controllers.kubeclient")

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class Resource:
    """One API resource: where it lives and whether it is namespaced."""

    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


NODES = Resource("", "v1", "nodes", namespaced=False, kind="Node")
PODS = Resource("", "v1", "pods", kind="Pod")
SERVICES = Resource("", "v1", "services", kind="Service")
ENDPOINTS = Resource("", "v1", "endpoints", kind="Endpoints")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False, kind="Namespace")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", kind="ServiceAccount")
CONFIG_MAPS = Resource("", "v1", "configmaps", kind="ConfigMap")
EVENTS = Resource("", "v1", "events", kind="Event")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", kind="EndpointSlice")


def is_status(exc: BaseException, *codes: int) -> bool:
    """True when exc is an ApiException carrying one of the HTTP status codes."""
    return isinstance(exc, ApiException) and exc.status in codes


class WatchStream:
    """One open watch response; iterate for decoded events, close() from any thread."""

    def __init__(self, response: Any) -> None:
        self._resp = response
        self._closed = False

    def __iter__(self) -> Iterator[JSON]:
        try:
            for line in iter_resp_lines(self._resp):
                if self._closed:
                    return
                if not line.strip():
                    continue
                yield json.loads(line)
        except Exception:
            if self._closed:
                return  # the read was interrupted by close(); not an error
            raise
        finally:
            self._release()

    def close(self) -> None:
        """Abort a blocked read: shutting the socket down wakes the reader thread."""
        self._closed = True
        conn = getattr(self._resp, "connection", None)
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _release(self) -> None:
        try:
            self._resp.close()
            self._resp.release_conn()
        except Exception:  # the connection may already be gone
            pass


class KubeClient:
    """Thread-safe (urllib3 pools are) JSON client; every method raises ApiException."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api = api_client

    @classmethod
    def from_kubeconfig(cls, path: str | Path, pool_size: int = 16) -> KubeClient:
        cfg = type.__call__(k8s.Configuration)
        k8s_config.load_kube_config(config_file=str(path), client_configuration=cfg,
                                    persist_config=False)
        # Each informer holds a watch connection; keep room for the workers' requests.
        cfg.connection_pool_maxsize = pool_size
        return cls(k8s.ApiClient(cfg))

    def ca_pem(self) -> str:
        """The cluster CA the kubeconfig trusts (published as kube-root-ca.crt)."""
        cfg = self.api.configuration
        if cfg.ssl_ca_cert:
            return Path(cfg.ssl_ca_cert).read_text()
        data = getattr(cfg, "ca_cert_data", None)
        if data:
            return data.decode() if isinstance(data, bytes) else str(data)
        return ""

    def close(self) -> None:
        self.api.close()

    # -- raw request -------------------------------------------------------------------

    def _open(self, method: str, path: str, query: dict[str, Any] | None = None,
              body: Any = None, content_type: str | None = None,
              timeout: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        req = self.api.param_serialize(
            method=method, resource_path=path, query_params=params,
            header_params=headers, body=body, auth_settings=["BearerToken"],
        )
        return self.api.call_api(*req, _request_timeout=timeout)

    def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None,
                timeout: float = 30.0) -> JSON:
        resp = self._open(method, path, query, body, content_type, timeout)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=data.decode(errors="replace"),
                                             data=None)
        return json.loads(data) if data else {}

    # -- verbs -------------------------------------------------------------------------

    def get(self, res: Resource, name: str, namespace: str | None = None) -> JSON:
        return self.request("GET", res.path(namespace, name))

    def list(self, res: Resource, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None,
             page_size: int = 500) -> JSON:
        """List all pages; returns a list object whose metadata.resourceVersion is the
        snapshot's version (the one to start a watch from)."""
        items: list[JSON] = []
        cont: str | None = None
        while True:
            page = self.request("GET", res.path(namespace), {
                "labelSelector": label_selector, "fieldSelector": field_selector,
                "limit": page_size, "continue": cont,
            })
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return {"metadata": meta, "items": items}

    def watch(self, res: Resource, resource_version: str, namespace: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int = 300) -> WatchStream:
        resp = self._open("GET", res.path(namespace), {
            "watch": "true", "resourceVersion": resource_version,
            "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds,
            "labelSelector": label_selector, "fieldSelector": field_selector,
        }, timeout=(10, timeout_seconds + 30))
        if not 200 <= resp.status <= 299:
            data = resp.read()
            raise ApiException.from_response(http_resp=resp, body=data.decode(errors="replace"),
                                             data=None)
        return WatchStream(resp.response)

    def create(self, res: Resource, obj: JSON, namespace: str | None = None) -> JSON:
        return self.request("POST", res.path(namespace), body=obj)

    def replace(self, res: Resource, obj: JSON, namespace: str | None = None,
                subresource: str | None = None) -> JSON:
        name = obj["metadata"]["name"]
        return self.request("PUT", res.path(namespace, name, subresource), body=obj)

    def patch(self, res: Resource, name: str, patch: JSON, namespace: str | None = None,
              subresource: str | None = None, content_type: str = MERGE_PATCH) -> JSON:
        return self.request("PATCH", res.path(namespace, name, subresource), body=patch,
                            content_type=content_type)

    def delete(self, res: Resource, name: str, namespace: str | None = None,
               grace_period_seconds: int | None = None) -> JSON:
        body = None
        if grace_period_seconds is not None:
            body = {"apiVersion": "v1", "kind": "DeleteOptions",
                    "gracePeriodSeconds": grace_period_seconds}
        return self.request("DELETE", res.path(namespace, name), body=body)

    def delete_collection(self, res: Resource, namespace: str | None = None) -> JSON:
        return self.request("DELETE", res.path(namespace))
