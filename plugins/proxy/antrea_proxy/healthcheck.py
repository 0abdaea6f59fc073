"""healthCheckNodePort servers (proxyAll): tell external load balancers which nodes
have local endpoints of a LoadBalancer Service with externalTrafficPolicy Local.

Kubernetes allocates the port; the node's Service proxy answers HTTP on it: 200 when
the node has ready endpoints of the Service, 503 otherwise, with a JSON body naming the
Service and the count (the shape kube-proxy serves, which cloud health checks read).
Without proxyAll, kube-proxy runs alongside and serves these ports itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from antrea_proxy.model import ServicePort

log = logging.getLogger("antrea.agent.proxy.healthcheck")


@dataclass(frozen=True)
class HealthCheck:
    namespace: str
    name: str
    local_endpoints: int

    def answer(self) -> tuple[int, bytes]:
        body = {"service": {"namespace": self.namespace, "name": self.name},
                "localEndpoints": self.local_endpoints, "serviceProxyHealthy": True}
        return (200 if self.local_endpoints else 503), json.dumps(body).encode()


def health_checks(ports: Iterable[ServicePort]) -> dict[int, HealthCheck]:
    """healthCheckNodePort -> what to answer, from the Service model."""
    local: dict[tuple[str, str], set[str]] = {}
    checks: dict[int, tuple[str, str]] = {}
    for sp in ports:
        if not sp.health_check_node_port:
            continue
        key = (sp.namespace, sp.name)
        checks[sp.health_check_node_port] = key
        local.setdefault(key, set()).update(
            e.ip for e in sp.endpoints if e.node == sp.local_node)
    return {port: HealthCheck(ns, name, len(local[(ns, name)]))
            for port, (ns, name) in checks.items()}


class HealthCheckServers:
    """One small HTTP server per healthCheckNodePort, started and stopped by `sync`."""

    def __init__(self, address: str = "0.0.0.0") -> None:
        self.address = address
        self._checks: dict[int, HealthCheck] = {}
        self._servers: dict[int, ThreadingHTTPServer] = {}
        self._lock = threading.Lock()

    def current(self, port: int) -> HealthCheck | None:
        with self._lock:
            return self._checks.get(port)

    def sync(self, checks: Mapping[int, HealthCheck]) -> None:
        with self._lock:
            self._checks = dict(checks)
        for port in set(self._servers) - set(checks):
            self._stop(port)
        for port in set(checks) - set(self._servers):
            try:
                server = ThreadingHTTPServer((self.address, port), self._handler(port))
            except OSError as exc:  # retried on the next sync
                log.error("health check port unavailable port=%d err=%s", port, exc)
                continue
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name=f"antrea-hc-{port}",
                             daemon=True).start()
            self._servers[port] = server
            log.info("health check serving port=%d service=%s/%s", port,
                     checks[port].namespace, checks[port].name)

    def close(self) -> None:
        for port in list(self._servers):
            self._stop(port)

    def _stop(self, port: int) -> None:
        server = self._servers.pop(port)
        server.shutdown()
        server.server_close()
        log.info("health check stopped port=%d", port)

    def _handler(self, port: int) -> type[BaseHTTPRequestHandler]:
        servers = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                check = servers.current(port)
                status, body = (check.answer() if check is not None
                                else (404, b'{"error":"no such health check"}'))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health check request port=%d %s", port, format % args)

        return Handler
