"""`antrea-controller`: computes NetworkPolicies for the cluster and streams them to agents.

    antrea-controller --config FILE [--kubeconfig FILE] [--bind-address IP] [--cert-dir DIR]

Start-up: configuration (errors name the key), the Kubernetes client (``--kubeconfig``,
else ``clientConnection.kubeconfig``, else in-cluster), the serving certificate (kept in
``--cert-dir``, or Secret kube-system/antrea-controller-tls when ``selfSignedCert: false``)
and its CA published in ConfigMap kube-system/antrea-ca, informers for Pods, Namespaces,
Nodes and NetworkPolicies feeding the computation on one thread, and — once the first
full list of every resource has been computed and published in one batch — the gRPC watch
server on ``apiPort``. Runs until SIGTERM/SIGINT.

Exit codes: 0 stopped by a signal; 1 failed at run time; 2 bad configuration or arguments.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from antrea_core.config.loading import ConfigError, load_controller_config
from antrea_core.signals import stop_on_signals, wait_until_stopped

LOG = logging.getLogger("antrea.controller")
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
DEFAULT_CERT_DIR = Path("/var/lib/antrea-controller/certs")
SYNC_LOG_INTERVAL = 30.0


class StartupError(RuntimeError):
    """The controller cannot start; the message says why."""


def _exit(code: int, message: str) -> NoReturn:
    typer.echo(f"antrea-controller: {message}", err=True)
    raise typer.Exit(code)


def local_addresses() -> list[str]:
    """Every global-scope address of this host (for the certificate's IP SANs)."""
    from pyroute2 import IPRoute

    found: list[str] = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr():
            ip = msg.get_attr("IFA_ADDRESS")
            if ip and not ipaddress.ip_address(ip).is_link_local and ip not in found:
                found.append(ip)
    return found


def certificate_ips(bind_address: str) -> list[str]:
    """The IPs agents may dial: the bind address, or every local address when it is a
    wildcard; loopback always (local clients such as antctl)."""
    wildcard = ipaddress.ip_address(bind_address).is_unspecified
    ips = local_addresses() if wildcard else [bind_address]
    return ips + [ip for ip in ("127.0.0.1",) if ip not in ips]


def listen_address(bind_address: str, port: int) -> str:
    host = f"[{bind_address}]" if ":" in bind_address else bind_address
    return f"{host}:{port}"


@dataclass
class Running:
    """What `start` built; `stop` undoes it in reverse."""

    informers: list[Any] = field(default_factory=list)
    dispatcher: Any = None
    store: Any = None
    server: Any = None
    api: Any = None
    egress: Any = None  # EgressIPController, when the Egress feature gate is on

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.egress is not None:
            self.egress.stop()
        for informer in self.informers:
            informer.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.store is not None and hasattr(self.store, "close"):
            self.store.close()
        if self.api is not None:
            self.api.close()


def _retry(what: str, fn: Any, stop: threading.Event) -> Any:
    """Call fn until it works or fails for good (the API server may not be up yet)."""
    from urllib3.exceptions import HTTPError

    from antrea_core.controller.certificates import CertificateError
    from antrea_core.k8s.informer import Backoff

    backoff = Backoff(0.5, 10.0)
    while True:
        try:
            return fn()
        except CertificateError as exc:
            if not exc.transient:
                raise
            error = str(exc)
        except (HTTPError, OSError) as exc:  # unreachable API server
            error = repr(exc)
        delay = backoff.next()
        LOG.warning("cannot %s yet error=%r retry_in=%.1fs", what, error, delay)
        if stop.wait(delay):
            raise StartupError(f"stopped while waiting to {what}")


def start(cfg: Any, *, kubeconfig: str | None, bind_address: str, cert_dir: Path,
          stop: threading.Event, watch_timeout: int = 300) -> Running:
    """Build and start everything; returns once the watch server is serving. Raises
    StartupError (or the component's own error) when something cannot start."""
    # Imported here: the configuration checks must work without these dependencies.
    from antrea_core.controller import certificates
    from antrea_core.controller.networkpolicy import NetworkPolicyController
    from antrea_core.controller.server import ControlPlaneServer, TokenReviewAuthenticator
    from antrea_core.controller.store import PolicyStore
    from antrea_core.k8s.clientconfig import api_client
    from antrea_core.k8s.dispatch import SerialDispatcher
    from antrea_core.k8s.informer import Informer
    from antrea_core.k8s.rawclient import RawClient
    from antrea_core.k8s.resources import NAMESPACES, NETWORK_POLICIES, NODES, PODS

    running = Running()
    try:
        running.api = api_client(kubeconfig, cfg.kube_api_server_override)
        raw = RawClient(running.api)
        if cfg.self_signed_cert:
            cert = certificates.self_signed(cert_dir, certificate_ips(bind_address))
        else:
            cert = _retry("read the TLS Secret", lambda: certificates.from_secret(raw), stop)
        _retry("publish the CA", lambda: certificates.publish_ca(raw, cert.ca_pem), stop)

        running.store = PolicyStore()
        computation = NetworkPolicyController(running.store)
        running.dispatcher = SerialDispatcher(computation.batch)
        feeds = {
            PODS: (computation.add_pod, computation.update_pod, computation.delete_pod),
            NAMESPACES: (computation.add_namespace, computation.update_namespace,
                         computation.delete_namespace),
            NODES: (computation.add_node, computation.update_node, computation.delete_node),
            NETWORK_POLICIES: (computation.add_network_policy,
                               computation.update_network_policy,
                               computation.delete_network_policy),
        }
        for resource, (add, update, delete) in feeds.items():
            informer = Informer(raw, resource, watch_timeout=watch_timeout)
            informer.add_handler(running.dispatcher.handler(
                resource.plural, add, lambda _old, new, update=update: update(new), delete))
            running.informers.append(informer)
        running.dispatcher.start()
        for informer in running.informers:
            informer.start()
        if cfg.gates.enabled("Egress"):
            # Independent of the NetworkPolicy sync: it has its own informers and thread.
            from antrea_core.controller.egress import EgressIPController

            running.egress = EgressIPController(raw, watch_timeout=watch_timeout)
            running.egress.start()
        waited = 0.0
        while not running.dispatcher.synced.wait(1.0):
            if stop.is_set():
                raise StartupError("stopped before the initial sync finished")
            waited += 1.0
            if waited % SYNC_LOG_INTERVAL == 0:
                waiting = [i.resource.plural for i in running.informers
                           if not i.synced.is_set()]
                LOG.info("waiting for the initial sync informers=%s",
                         ",".join(waiting) or "-")
        LOG.info("initial sync done %s", " ".join(f"{k}={v}" for k, v in
                                                  computation.stats().items()))
        # The synced state (up to millions of long-lived objects at scale) moves to the
        # permanent generation: later collections no longer rescan it.
        gc.collect()
        gc.freeze()

        address = listen_address(bind_address, cfg.api_port)
        running.server = ControlPlaneServer(running.store,
                                            TokenReviewAuthenticator(running.api),
                                            tls=(cert.cert_pem, cert.key_pem),
                                            address=address)
        running.server.start()
        LOG.info("serving the control-plane API address=%s port=%s", address,
                 running.server.port)
        return running
    except BaseException:
        running.stop()
        raise


def run(
    config: Annotated[Path | None, typer.Option("--config",
                                                help="antrea-controller.conf")] = None,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", help="kubeconfig (default: clientConnection.kubeconfig, "
        "else in-cluster)")] = None,
    bind_address: Annotated[str, typer.Option(
        "--bind-address", help="IP the control-plane API listens on")] = "0.0.0.0",
    cert_dir: Annotated[Path, typer.Option(
        "--cert-dir", help="where the self-signed CA and certificate are kept")
    ] = DEFAULT_CERT_DIR,
) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_controller_config(config)
    except ConfigError as exc:
        _exit(EXIT_CONFIG, str(exc))
    try:
        ipaddress.ip_address(bind_address)
    except ValueError:
        _exit(EXIT_CONFIG, f"--bind-address: {bind_address!r} is not an IP address")
    code = serve(cfg, kubeconfig=kubeconfig or cfg.client_connection.kubeconfig or None,
                 bind_address=bind_address, cert_dir=cert_dir)
    if code:
        raise typer.Exit(code)


def serve(cfg: Any, *, kubeconfig: str | None, bind_address: str, cert_dir: Path) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    stop = stop_on_signals()
    try:
        running = start(cfg, kubeconfig=kubeconfig, bind_address=bind_address,
                        cert_dir=cert_dir, stop=stop)
    except Exception as exc:
        if stop.is_set():
            LOG.info("stopped during start-up: %s", exc)
            return 0
        from antrea_core.controller.certificates import CertificateError
        from antrea_core.k8s.clientconfig import KubeConfigError

        if isinstance(exc, CertificateError | KubeConfigError | StartupError | OSError):
            LOG.error("controller failed to start: %s", exc)  # the message says it all
        else:
            LOG.exception("controller failed to start")
        typer.echo(f"antrea-controller: {exc}", err=True)
        return EXIT_RUNTIME
    wait_until_stopped(stop)
    LOG.info("stopping")
    running.stop()
    LOG.info("stopped")
    return 0


def main() -> None:
    typer.run(run)
