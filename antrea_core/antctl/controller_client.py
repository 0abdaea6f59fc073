"""antctl's view of the antrea-controller: find it through the cluster, query it.

antctl finds the cluster like kubectl (``--kubeconfig``, ``$KUBECONFIG``,
``~/.kube/config``), then the controller the way an agent does
(`antrea_core.agent.controlplane.discovery`: the ``kube-system/antrea`` Service's
endpoints, the CA from ConfigMap ``kube-system/antrea-ca``) and authenticates with the
kubeconfig's bearer token. The query client is
`antrea_core.agent.controlplane.client.ControlPlaneQueryClient`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import grpc

from antrea_core.antctl.errors import AntctlError, NotFound, Unavailable
from antrea_core.apis.controlplane import ControlPlaneObject, ObjectKind

log = logging.getLogger("antrea.antctl")

DISCOVERY_TIMEOUT = 5.0  # Service endpoints + CA ConfigMap; antctl should not hang

Listed = list[tuple[ControlPlaneObject, frozenset[str]]]


class ControlPlaneQuery(Protocol):
    """What antctl needs from the controller's query API."""

    def list(self, kind: ObjectKind, name: str | None = None) -> list[tuple[Any, Any]]: ...




def _status_of(exc: Exception) -> tuple[grpc.StatusCode | None, str]:
    """The gRPC status of a query failure: the client's QueryError carries it as
    attributes, a raw grpc.RpcError as methods."""
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", "")
    if callable(code):
        code, details = code(), (details() if callable(details) else details)
    return (code if isinstance(code, grpc.StatusCode) else None), str(details or "")


class ControllerView:
    """Wraps a query client: errors become AntctlErrors, spans become frozensets."""

    def __init__(self, client: ControlPlaneQuery, address: str = "antrea-controller") -> None:
        self.client = client
        self.address = address

    def list(self, kind: ObjectKind, name: str | None = None) -> Listed:
        try:
            found = self.client.list(kind, name)
        except Exception as exc:
            code, details = _status_of(exc)
            if code is None:
                raise
            if code is grpc.StatusCode.NOT_FOUND:
                return []
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(f"cannot reach the antrea-controller at {self.address}: "
                                  f"{details}") from None
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise AntctlError(f"the antrea-controller refused the request ({code.name}): "
                                  f"{details}; check the kubeconfig's credentials") from None
            raise AntctlError(f"antrea-controller: {code.name}: {details}") from None
        return [(obj, frozenset(span or ())) for obj, span in found]

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def get(self, kind: ObjectKind, name: str) -> Listed:
        found = [(o, s) for o, s in self.list(kind, name) if o.name == name]
        if not found:
            raise NotFound(f"{kind} {name!r} not found")
        return found


ControllerFactory = Callable[[], ControllerView]


# -- connecting through the cluster -------------------------------------------------------

def kubeconfig_path(kubeconfig: str | None) -> str:
    """--kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config (as kubectl)."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(":")[0]
    path = path or str(Path.home() / ".kube" / "config")
    if not Path(path).is_file():
        raise AntctlError(f"no kubeconfig at {path}: pass --kubeconfig or set KUBECONFIG")
    return path


def controller_factory(kubeconfig: str | None, address: str | None = None,
                       timeout: float = DISCOVERY_TIMEOUT) -> ControllerFactory:
    """Resolve the controller lazily: commands that only talk to the agent never touch
    the cluster. `address` (HOST:PORT) replaces the Service's endpoint."""

    def connect() -> ControllerView:
        from antrea_core.agent.controlplane import discovery
        from antrea_core.agent.controlplane.client import ControlPlaneQueryClient
        from antrea_core.k8s.clientconfig import KubeConfigError, api_client, bearer_token

        try:
            api = api_client(kubeconfig_path(kubeconfig))
        except KubeConfigError as exc:
            raise AntctlError(str(exc)) from None
        token = bearer_token(api)
        try:
            found = discovery.discover(api, timeout=timeout)
        except discovery.DiscoveryError as exc:
            raise Unavailable(f"{exc} (is antrea-controller running?)") from None
        finally:
            api.close()
        target = address or found.address
        log.debug("controller address=%s server_name=%s", target, found.server_name)
        client = ControlPlaneQueryClient(target, found.ca_pem, token,
                                         server_name=found.server_name)
        return ControllerView(client, target)

    return connect
