"""This Node and its pods as the Kubernetes API sees them (official client, synchronous).

The agent needs two things from the API before it can network pods: its Node's podCIDRs
(assigned by the controller-manager, possibly after the agent started, so it waits) and
the node's transport addresses; and at start-up the set of pods bound to the node, to
release what belonged to pods deleted while the agent was down. Polling, not a watch:
it happens once per start, and a poll has no resourceVersion/410 handling to get wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import kubernetes
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from antrea_core.k8s import clientconfig
from antrea_core.plugins.context import NodeInfo

log = logging.getLogger("antrea.agent.nodeinfo")

TRANSPORT_ADDRESS_TYPES = ("InternalIP", "ExternalIP")  # preference order, as Antrea
POLL_INTERVAL = 1.0
REQUEST_TIMEOUT = 10.0


class NodeInfoError(RuntimeError):
    """The Node (or its pods) could not be read, or it never got a podCIDR."""


class ClusterView(Protocol):
    """What the agent reads from the cluster at start-up (the API, or a test double)."""

    def wait_for_node(self, stop: threading.Event | None = None,
                      timeout: float | None = None) -> NodeInfo:
        """This Node once it has podCIDRs."""
        ...

    def local_pods(self) -> set[tuple[str, str]]:
        """(namespace, name) of every pod bound to this Node."""
        ...


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def node_info_from(node: Mapping[str, Any]) -> NodeInfo:
    """NodeInfo of a Node in its API form (camelCase dict); pod_cidrs empty until the
    controller-manager assigned one."""
    name = _get(node, "metadata", "name") or ""
    cidrs = list(_get(node, "spec", "podCIDRs") or [])
    single = _get(node, "spec", "podCIDR")
    if not cidrs and single:
        cidrs = [single]
    addresses = _get(node, "status", "addresses") or []
    ips: list[str] = []
    for kind in TRANSPORT_ADDRESS_TYPES:
        ips.extend(str(_get(a, "address")) for a in addresses
                   if _get(a, "type") == kind and _get(a, "address"))
        if ips:
            break  # InternalIPs when there are any, else ExternalIPs
    labels = dict(_get(node, "metadata", "labels") or {})
    return NodeInfo(name=name, ips=tuple(ips), pod_cidrs=tuple(cidrs), labels=labels)


def api_client(kubeconfig: str | None = None, server_override: str = ""
               ) -> kubernetes.client.ApiClient:
    """A client from ``kubeconfig``, else the in-cluster ServiceAccount."""
    try:
        return clientconfig.api_client(kubeconfig, server_override)
    except clientconfig.KubeConfigError as exc:
        raise NodeInfoError(str(exc)) from None


class KubeClusterView:
    """`ClusterView` over the Kubernetes API."""

    def __init__(self, api: kubernetes.client.ApiClient, node_name: str,
                 poll_interval: float = POLL_INTERVAL) -> None:
        self.api = api
        self.core = kubernetes.client.CoreV1Api(api)
        self.node_name = node_name
        self.poll_interval = poll_interval

    def read_node(self) -> NodeInfo:
        try:
            node = self.core.read_node(self.node_name, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                raise NodeInfoError(f"Node {self.node_name} does not exist") from None
            raise NodeInfoError(f"cannot read Node {self.node_name}: HTTP {exc.status} "
                                f"{exc.reason}") from None
        except HTTPError as exc:
            raise NodeInfoError(f"cannot read Node {self.node_name}: {exc}") from None
        return node_info_from(self.api.sanitize_for_serialization(node))

    def wait_for_node(self, stop: threading.Event | None = None,
                      timeout: float | None = None) -> NodeInfo:
        """Poll until the Node exists with podCIDRs; NodeInfoError on timeout or stop.

        A missing Node is waited for too: kubelet registers it, maybe after us.
        """
        stop = stop or threading.Event()
        deadline = None if timeout is None else time.monotonic() + timeout
        last = ""
        while True:
            try:
                info = self.read_node()
                if info.pod_cidrs:
                    log.info("node ready name=%s podCIDRs=%s ips=%s", info.name,
                             ",".join(info.pod_cidrs), ",".join(info.ips) or "-")
                    return info
                problem = f"Node {self.node_name} has no podCIDR yet"
            except NodeInfoError as exc:
                problem = str(exc)
            if problem != last:
                log.info("waiting for node: %s", problem)
                last = problem
            if deadline is not None and time.monotonic() >= deadline:
                raise NodeInfoError(f"gave up after {timeout:g}s: {problem}")
            if stop.wait(self.poll_interval):
                raise NodeInfoError(f"stopped while waiting: {problem}")

    def local_pods(self) -> set[tuple[str, str]]:
        try:
            pods = self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node_name}",
                _request_timeout=REQUEST_TIMEOUT)
        except (ApiException, HTTPError) as exc:
            raise NodeInfoError(f"cannot list the pods of Node {self.node_name}: {exc}"
                                ) from None
        return {(p.metadata.namespace, p.metadata.name) for p in pods.items}
