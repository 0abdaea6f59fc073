"""JSON requests through the official client's transport, without its model objects.

The generated models cost more than the network at scale (deserializing 100k pods
dominates a list), so reads and watches stay plain dicts in API JSON shape. The official
client still does the transport: kubeconfig, TLS, bearer tokens, connection pools and
ApiException construction.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from antrea_core.k8s.resources import Resource

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


def is_status(exc: BaseException, *codes: int) -> bool:
    """True when exc is an ApiException carrying one of the HTTP status codes."""
    return isinstance(exc, ApiException) and exc.status in codes


class WatchStream:
    """One open watch response: iterate for decoded events; close() from any thread
    aborts a blocked read."""

    def __init__(self, response: Any) -> None:
        self._resp = response
        self._closed = False

    def __iter__(self) -> Iterator[JSON]:
        pending = bytearray()
        try:
            # amt=None: one piece per HTTP chunk, so an event is seen as soon as it arrives.
            for chunk in self._resp.stream(None, decode_content=True):
                if self._closed:
                    return
                pending += chunk
                end = pending.rfind(b"\n")
                if end < 0:
                    continue
                complete, pending = pending[:end], pending[end + 1:]
                for line in complete.split(b"\n"):
                    if line.strip():
                        yield json.loads(line)
            if pending.strip() and not self._closed:
                yield json.loads(pending)
        except Exception:
            if self._closed:
                return  # the read was interrupted by close(): not an error
            raise
        finally:
            self._release()

    def close(self) -> None:
        self._closed = True
        conn = getattr(self._resp, "connection", None)
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _release(self) -> None:
        with contextlib.suppress(Exception):  # the connection may already be gone
            self._resp.release_conn()


class RawClient:
    """Thread-safe (urllib3 pools are); every method raises ApiException on HTTP errors."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.api = api

    def _open(self, method: str, path: str, query: dict[str, Any] | None = None,
              body: Any = None, content_type: str | None = None, timeout: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        req = self.api.param_serialize(method=method, resource_path=path, query_params=params,
                                       header_params=headers, body=body,
                                       auth_settings=["BearerToken"])
        resp = self.api.call_api(*req, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            data = resp.read()
            raise ApiException.from_response(http_resp=resp,
                                             body=data.decode(errors="replace"), data=None)
        return resp

    def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str | None = None,
                timeout: float = 30.0) -> JSON:
        data = self._open(method, path, query, body, content_type, timeout).read()
        return json.loads(data) if data else {}

    def get(self, res: Resource, name: str, namespace: str | None = None) -> JSON:
        return self.request("GET", res.path(namespace, name))

    def list(self, res: Resource, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None,
             page_size: int = 500) -> JSON:
        """Every page; metadata.resourceVersion is the snapshot's (to watch from)."""
        items: list[JSON] = []
        cont: str | None = None
        while True:
            page = self.request("GET", res.path(namespace), {
                "labelSelector": label_selector, "fieldSelector": field_selector,
                "limit": page_size, "continue": cont})
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
        return WatchStream(resp.response)

    def create(self, res: Resource, obj: JSON, namespace: str | None = None) -> JSON:
        return self.request("POST", res.path(namespace), body=obj)

    def replace(self, res: Resource, obj: JSON, namespace: str | None = None) -> JSON:
        return self.request("PUT", res.path(namespace, obj["metadata"]["name"]), body=obj)

    def patch(self, res: Resource, name: str, patch: JSON, namespace: str | None = None,
              content_type: str = MERGE_PATCH) -> JSON:
        return self.request("PATCH", res.path(namespace, name), body=patch,
                            content_type=content_type)

    def delete(self, res: Resource, name: str, namespace: str | None = None) -> JSON:
        return self.request("DELETE", res.path(namespace, name))
