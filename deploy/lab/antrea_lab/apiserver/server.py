"""The lab API server: wiring of storage, REST semantics, auth and HTTP(S) listeners.

A lab/test server speaking the Kubernetes API faithfully enough for the official Python
client and kubectl; not a production API server (no authorization, no admission chain,
no garbage collection).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import ssl
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiohttp import web

from .allocators import IPAllocator, PortAllocator
from .catalog import Catalog
from .crds import CRDStrategy, infos_for
from .errors import APIError
from .handlers import Handlers, json_response
from .namespace_strategy import NamespaceStrategy
from .netns import listen_in_netns
from .networkpolicy_strategy import NetworkPolicyStrategy
from .persistence import SqlitePersistence
from .pod_strategy import PodStrategy
from .rest import MERGE_PATCH, RestAPI
from .service_strategy import ServiceStrategy
from .storage import Store
from .strategy import Strategy

log = logging.getLogger("antrea.lab.apiserver")

KUBE_MAJOR, KUBE_MINOR = "1", "36"
VERSION_INFO = {
    "major": KUBE_MAJOR, "minor": KUBE_MINOR,
    "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-antrea-lab",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z", "goVersion": "python3", "compiler": "cpython",
    "platform": "linux/amd64",
}
PUBLIC_PATHS = ("/version", "/healthz", "/readyz", "/livez")
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DNS_SANS = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"]
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
USER_KEY = web.RequestKey("user", object)


def first_service_ip(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr, strict=False).network_address + 1)


class APIServer:
    def __init__(self, *, data_dir: Path | None = None, pki_dir: Path | None = None,
                 token_file: Path | None = None, service_cidr: str = "10.96.0.0/16",
                 node_port_range: tuple[int, int] = (30000, 32767),
                 history_window: int = 10_000, watcher_max_pending: int = 50_000,
                 bookmark_interval: float = 5.0, flush_interval: float = 0.05,
                 extra_ip_sans: list[str] | None = None) -> None:
        self.catalog = Catalog()
        self.pki_dir = pki_dir
        self.bookmark_interval = bookmark_interval
        self.advertise_address = ""
        self.persistence = (SqlitePersistence(data_dir / "state.db", flush_interval)
                            if data_dir is not None else None)
        rv = self.persistence.stored_rv() if self.persistence else 0
        self.store = Store(history_window, watcher_max_pending, self.persistence, rv)
        self.service_cidr = service_cidr
        self.services = ServiceStrategy(IPAllocator(service_cidr), PortAllocator(*node_port_range))
        strategies: dict[tuple[str, str], Strategy] = {
            ("", "pods"): PodStrategy(),
            ("", "services"): self.services,
            ("", "namespaces"): NamespaceStrategy(),
            ("networking.k8s.io", "networkpolicies"): NetworkPolicyStrategy(),
        }
        self.rest = RestAPI(self.store, self.catalog, strategies)
        strategies[CRD_KEY] = CRDStrategy(self.catalog, self.rest.delete_all_of)
        if pki_dir is not None:
            from .pki import ensure_pki

            ips = ["127.0.0.1", "192.168.77.1", first_service_ip(service_cidr),
                   *(extra_ip_sans or [])]
            ensure_pki(pki_dir, list(dict.fromkeys(ips)), DNS_SANS)
        self._setup_auth(token_file)
        self._load()
        self._bootstrap()
        self._runner: web.AppRunner | None = None
        self.app = self.make_app()

    # --- auth --------------------------------------------------------------------------

    def _setup_auth(self, token_file: Path | None) -> None:
        from .auth import Authenticator, TokenIssuer

        pub = priv = None
        if self.pki_dir is not None:
            pub = (self.pki_dir / "sa.pub").read_bytes()
            priv = (self.pki_dir / "sa.key").read_bytes()
        self.authn = Authenticator(token_file, pub, object_checker=self._object_exists) \
            if token_file is not None or pub is not None else None
        self.issuer = TokenIssuer(priv) if priv is not None else None
        if token_file is None:
            log.warning("no --token-file: requests without a token are allowed (test mode)")
        self._anonymous_ok = token_file is None

    def _object_exists(self, kind: str, namespace: str, name: str, uid: str) -> bool:
        resource = {"ServiceAccount": "serviceaccounts", "Pod": "pods", "Secret": "secrets",
                    "Node": "nodes"}.get(kind)
        info = self.catalog.lookup("", "v1", resource) if resource else None
        if info is None:
            return False
        entry = self.store.get(info, namespace, name)
        return entry is not None and (not uid or entry.obj["metadata"].get("uid") == uid)

    def authenticate(self, request: web.Request) -> Any:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer ") and self.authn is not None:
            user = self.authn.authenticate(header[7:].strip())
            if user is not None:
                return user
        elif self._anonymous_ok:
            return None
        raise APIError(401, "Unauthorized", "Unauthorized")

    def token_request(self, namespace: str, sa_name: str, body: Any) -> dict[str, Any]:
        from .auth import parse_token_request, token_request_response

        sa_info = self.catalog.lookup("", "v1", "serviceaccounts")
        assert sa_info is not None
        sa = self.rest.get(sa_info, namespace, sa_name).obj
        if self.issuer is None or self.authn is None:
            raise APIError(503, "ServiceUnavailable", "no ServiceAccount signing key")
        if not isinstance(body, dict):
            raise APIError(400, "BadRequest", "the request body must be a TokenRequest")
        audiences, seconds, bound = parse_token_request(body, self.authn.audiences)
        if bound and bound.get("kind") == "Pod":
            pod_info = self.catalog.lookup("", "v1", "pods")
            assert pod_info is not None
            pod = self.rest.get(pod_info, namespace, bound.get("name", "")).obj
            if bound.get("uid") and bound["uid"] != pod["metadata"]["uid"]:
                raise APIError(409, "Conflict", "the UID in the bound object reference "
                               "does not match the pod")
            bound = {**bound, "uid": pod["metadata"]["uid"]}
            node_name = (pod.get("spec") or {}).get("nodeName")
            node_info = self.catalog.lookup("", "v1", "nodes")
            node = self.store.get(node_info, "", node_name) if node_info and node_name else None
            if node is not None:
                bound["node"] = {"name": node_name, "uid": node.obj["metadata"]["uid"]}
        token, expiry = self.issuer.issue(namespace, sa_name, sa["metadata"]["uid"], audiences,
                                          seconds, bound)
        return token_request_response(body, token, expiry)

    def token_review(self, body: Any) -> dict[str, Any]:
        from .auth import token_review

        if self.authn is None:
            raise APIError(503, "ServiceUnavailable", "authentication is not configured")
        if not isinstance(body, dict):
            raise APIError(400, "BadRequest", "the request body must be a TokenReview")
        return token_review(self.authn, body)

    # --- state -------------------------------------------------------------------------

    def _load(self) -> None:
        if self.persistence is None:
            return
        rows: dict[tuple[str, str], list[tuple[dict[str, Any], bytes]]] = defaultdict(list)
        for key, data in self.persistence.rows():
            group, resource, _rest = key.split("/", 2)
            raw = bytes(data)
            rows[(group, resource)].append((json.loads(raw), raw))
        # CRDs first: they decide which custom resources can be loaded.
        for crd, _ in rows.get(CRD_KEY, []):
            if not crd["metadata"].get("deletionTimestamp"):
                self.catalog.set_crd(crd["metadata"]["name"], infos_for(crd))
        count = 0
        for (group, resource), objs in rows.items():
            info = self.catalog.storage_info(group, resource)
            if info is None:
                log.warning("skipping stored objects of unknown resource group=%s resource=%s",
                            group, resource)
                continue
            self.store.load(info, objs)
            count += len(objs)
        svc_info = self.catalog.lookup("", "v1", "services")
        assert svc_info is not None
        for _, entry in self.store.items(svc_info):
            self.services.mark(entry.obj)
        log.info("state loaded objects=%d resourceVersion=%d", count, self.store.rv)

    def _bootstrap(self) -> None:
        ns_info = self.rest.ns_info
        for ns in BOOTSTRAP_NAMESPACES:
            if self.store.get(ns_info, "", ns) is None:
                self.rest.create(ns_info, "", {"metadata": {"name": ns}},
                                 field_manager="kube-apiserver")
        svc_info = self.catalog.lookup("", "v1", "services")
        assert svc_info is not None
        if self.store.get(svc_info, "default", "kubernetes") is None:
            self.rest.create(svc_info, "default", {
                "metadata": {"name": "kubernetes",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": first_service_ip(self.service_cidr),
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                    "targetPort": 6443}]},
            }, field_manager="kube-apiserver")

    def reconcile_kubernetes_endpoints(self, ip: str, port: int) -> None:
        """Endpoints + EndpointSlice of default/kubernetes -> ip:port (and its targetPort)."""
        svc_info = self.catalog.lookup("", "v1", "services")
        ep_info = self.catalog.lookup("", "v1", "endpoints")
        slice_info = self.catalog.lookup("discovery.k8s.io", "v1", "endpointslices")
        assert svc_info and ep_info and slice_info
        svc = self.store.get(svc_info, "default", "kubernetes")
        if svc is not None and svc.obj["spec"]["ports"][0].get("targetPort") != port:
            self.rest.patch(svc_info, "default", "kubernetes", MERGE_PATCH,
                            {"spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                 "targetPort": port}]}},
                            field_manager="kube-apiserver")
        labels = {"endpointslice.kubernetes.io/skip-mirror": "true"}
        ep = {"metadata": {"name": "kubernetes", "labels": labels},
              "subsets": [{"addresses": [{"ip": ip}],
                           "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
        family = "IPv6" if ":" in ip else "IPv4"
        eps = {"metadata": {"name": "kubernetes",
                            "labels": {"kubernetes.io/service-name": "kubernetes"}},
               "addressType": family,
               "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
               "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
        for info, body in ((ep_info, ep), (slice_info, eps)):
            current = self.store.get(info, "default", "kubernetes")
            if current is None:
                self.rest.create(info, "default", body, field_manager="kube-apiserver")
            else:
                self.rest.update(info, "default", "kubernetes",
                                 {**copy.deepcopy(current.obj),
                                  **{k: v for k, v in body.items() if k != "metadata"}},
                                 field_manager="kube-apiserver")

    # --- HTTP --------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        handlers = Handlers(self)

        @web.middleware
        async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                return await handler(request)
            except APIError as e:
                if e.code >= 500:
                    log.warning("request failed method=%s path=%s code=%d message=%s",
                                request.method, request.path, e.code, e)
                resp = json_response(e.to_status(), e.code)
                if e.retry_after is not None:
                    resp.headers["Retry-After"] = str(e.retry_after)
                return resp
            except web.HTTPException:
                raise
            except Exception as e:
                log.exception("internal error method=%s path=%s", request.method, request.path)
                return json_response(APIError(500, "InternalError",
                                              f"Internal error occurred: {e}").to_status(), 500)

        @web.middleware
        async def authn(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path not in PUBLIC_PATHS:
                request[USER_KEY] = self.authenticate(request)
            return await handler(request)

        async def version(_: web.Request) -> web.Response:
            return json_response(VERSION_INFO)

        async def health(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application(middlewares=[errors, authn], client_max_size=3 * 1024 * 1024)
        app.router.add_get("/version", version)
        for path in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(path, health)
        app.router.add_route("*", "/{tail:.*}", handlers.dispatch)
        return app

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.pki_dir is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki_dir / "apiserver.crt", self.pki_dir / "apiserver.key")
        return ctx

    async def start(self, listen: list[tuple[str, int]],
                    listen_netns: list[tuple[str, str, int]] = ()) -> list[tuple[str, int]]:
        """Serve on each host:port (port 0 = ephemeral) and netns=host:port; returns the
        bound addresses of `listen`."""
        if self.persistence is not None:
            self.persistence.start()
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        ctx = self.ssl_context()
        bound: list[tuple[str, int]] = []
        for host, port in listen:
            site = web.TCPSite(self._runner, host, port, ssl_context=ctx, backlog=512)
            await site.start()
            server = site._server
            assert server is not None and hasattr(server, "sockets")
            addr = server.sockets[0].getsockname()
            bound.append((addr[0], addr[1]))
        for netns, host, port in listen_netns:
            sock = listen_in_netns(netns, host, port)
            await web.SockSite(self._runner, sock, ssl_context=ctx).start()
            log.info("listening netns=%s address=%s:%d", netns, host, port)
        # Pods reach the API through the `kubernetes` Service: point it at the address
        # nodes can route to (the underlay listener), like kube-apiserver's reconciler.
        if listen_netns:
            _, host, port = listen_netns[0]
            self.reconcile_kubernetes_endpoints(host, port)
        if bound:
            scheme = "https" if ctx else "http"
            self.advertise_address = f"{bound[0][0]}:{bound[0][1]}"
            log.info("serving scheme=%s addresses=%s", scheme,
                     ",".join(f"{h}:{p}" for h, p in bound))
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.persistence is not None:
            await self.persistence.close()
            self.persistence = None
            self.store.persistence = None
