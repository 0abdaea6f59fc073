"""How an agent finds antrea-controller, as Antrea's agent does: the address from the
``kube-system/antrea`` Service, the CA from ConfigMap ``kube-system/antrea-ca``, the bearer
token from the agent's own Kubernetes credentials.

The address is read from the Service's EndpointSlices (or its Endpoints when the cluster
has no slices for it) rather than its ClusterIP, so it works before any Service proxy runs
on the node. The certificate is checked against the Service's DNS name
(``antrea.kube-system.svc``), which is among its SANs whatever IP we dial.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from antrea_core.k8s.clientconfig import bearer_token
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import CONFIG_MAPS, ENDPOINT_SLICES, ENDPOINTS

if TYPE_CHECKING:
    from antrea_core.agent.controlplane.client import ControllerWatch
    from antrea_core.apis.controlplane import PolicyEventHandler

log = logging.getLogger("antrea.agent.controlplane.discovery")

NAMESPACE = "kube-system"
SERVICE = "antrea"
CA_CONFIGMAP = "antrea-ca"
CA_KEY = "ca.crt"
PORT_NAME = "api"
SERVER_NAME = "antrea.kube-system.svc"
POLL_INTERVAL = 2.0
LOG_INTERVAL = 30.0


class DiscoveryError(RuntimeError):
    """The controller could not be found (timed out or stopped)."""


@dataclass(frozen=True)
class ControllerEndpoint:
    host: str
    port: int
    ca_pem: bytes
    server_name: str = SERVER_NAME

    @property
    def address(self) -> str:
        """host:port for gRPC (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _pick_port(ports: list[dict[str, Any]]) -> int | None:
    named = [p for p in ports if p.get("name") == PORT_NAME]
    chosen = named or (ports if len(ports) == 1 else [])
    return int(chosen[0]["port"]) if chosen and chosen[0].get("port") else None


def _from_slices(raw: RawClient) -> tuple[str, int] | None:
    slices = raw.list(ENDPOINT_SLICES, NAMESPACE,
                      label_selector=f"kubernetes.io/service-name={SERVICE}")["items"]
    for eps in sorted(slices, key=lambda s: s["metadata"]["name"]):
        port = _pick_port(eps.get("ports") or [])
        if port is None:
            continue
        for endpoint in eps.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                return address, port
    return None


def _from_endpoints(raw: RawClient) -> tuple[str, int] | None:
    try:
        ep = raw.get(ENDPOINTS, SERVICE, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    for subset in ep.get("subsets") or []:
        port = _pick_port(subset.get("ports") or [])
        addresses = subset.get("addresses") or []  # ready ones only
        if port is not None and addresses:
            return addresses[0]["ip"], port
    return None


def find_address(raw: RawClient) -> tuple[str, int] | None:
    """(ip, port) of a ready controller endpoint, or None while there is none."""
    return _from_slices(raw) or _from_endpoints(raw)


def read_ca(raw: RawClient) -> bytes | None:
    """The CA bundle agents trust, or None while it is not published."""
    try:
        cm = raw.get(CONFIG_MAPS, CA_CONFIGMAP, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    ca = (cm.get("data") or {}).get(CA_KEY)
    return ca.encode() if ca else None


def discover(api: kubernetes.client.ApiClient, stop: threading.Event | None = None,
             timeout: float | None = None, poll_interval: float = POLL_INTERVAL
             ) -> ControllerEndpoint:
    """Wait until the controller's endpoint and CA exist; DiscoveryError on timeout/stop."""
    raw = RawClient(api)
    stop = stop or threading.Event()
    deadline = None if timeout is None else time.monotonic() + timeout
    last_log = 0.0
    while True:
        missing: list[str] = []
        try:
            address = find_address(raw)
            ca = read_ca(raw)
            if address is not None and ca is not None:
                found = ControllerEndpoint(address[0], address[1], ca)
                log.info("found antrea-controller address=%s", found.address)
                return found
            if address is None:
                missing.append(f"a ready endpoint of Service {NAMESPACE}/{SERVICE}")
            if ca is None:
                missing.append(f"ConfigMap {NAMESPACE}/{CA_CONFIGMAP} key {CA_KEY}")
        except ApiException as exc:
            missing.append(f"the API server (HTTP {exc.status} {exc.reason})")
        except (HTTPError, OSError) as exc:
            missing.append(f"the API server ({exc})")
        now = time.monotonic()
        if now - last_log >= LOG_INTERVAL:
            log.info("waiting for antrea-controller missing=%r", "; ".join(missing))
            last_log = now
        if deadline is not None and now >= deadline:
            raise DiscoveryError("antrea-controller not found: waiting for "
                                 + "; ".join(missing))
        if stop.wait(poll_interval):
            raise DiscoveryError("stopped while looking for antrea-controller")


def token_source(api: kubernetes.client.ApiClient) -> Callable[[], str]:
    """The bearer token to present to the controller: the agent's own API credential
    (read at each call, so a rotated ServiceAccount token is picked up)."""
    return lambda: bearer_token(api)


def start_watch(api: kubernetes.client.ApiClient, node_name: str,
                handler: PolicyEventHandler, stop: threading.Event | None = None,
                timeout: float | None = None) -> ControllerWatch:
    """Discover the controller and start this node's watch into ``handler`` (the agent's
    whole wiring); DiscoveryError if it is not found before ``timeout``/``stop``."""
    from antrea_core.agent.controlplane.client import ControllerWatch

    found = discover(api, stop, timeout)
    watch = ControllerWatch(found.address, found.ca_pem, token_source(api), node_name,
                            handler, server_name=found.server_name,
                            resolve=lambda: resolve_now(RawClient(api)))
    watch.start()
    return watch


def resolve_now(raw: RawClient) -> tuple[str, bytes] | None:
    """The controller's (address, CA) at this moment, or None while either is missing
    (a restarting controller has no ready endpoint for a while)."""
    address, ca = find_address(raw), read_ca(raw)
    if address is None or ca is None:
        return None
    return ControllerEndpoint(address[0], address[1], ca).address, ca
