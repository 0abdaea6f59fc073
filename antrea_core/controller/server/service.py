"""The ControlPlane gRPC service over TLS: agents' Watch streams and antctl's queries.

Every call must carry `authorization: Bearer <token>`. A node identity may watch only
its own node and its queries see only its span; another authenticated user (an admin)
may query everything but not watch. Status codes: no or invalid token ->
UNAUTHENTICATED, wrong node / non-node watch -> PERMISSION_DENIED, token check not
possible -> UNAVAILABLE (the agent retries).

Responses are pre-serialized bytes (see `encoding.py`), so the handlers are registered
with an identity serializer rather than through the generated servicer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, NoReturn

import grpc

from antrea_core.apis import controlplane_pb2 as pb
from antrea_core.apis.controlplane import (
    EventType,
    ObjectKind,
    WatchEvent,
    kind_of,
)
from antrea_core.controller.server import encoding
from antrea_core.controller.server.auth import Authenticator, AuthUnavailableError, Identity
from antrea_core.controller.store import NodeWatcher, PolicyStore, Snapshot

log = logging.getLogger("antrea.controller.server")

SERVICE = "antrea.controlplane.v1.ControlPlane"
DEFAULT_ADDRESS = "0.0.0.0:10349"
BOOKMARK_INTERVAL = 30.0
SNAPSHOT_BATCH = 100  # objects per EventBatch while sending a snapshot
MAX_WORKERS = 256  # one thread per open stream (sync gRPC server)
SERVER_OPTIONS = [
    # Let agents ping every 10 s to notice a dead controller quickly.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


def _bytes(x: bytes) -> bytes:
    return x


class ControlPlaneServer:
    """Serves `store` on `address` ("host:port"; port 0 picks one, see `port`)."""

    def __init__(self, store: PolicyStore, authenticator: Authenticator,
                 tls: tuple[bytes, bytes], address: str = DEFAULT_ADDRESS, *,
                 bookmark_interval: float = BOOKMARK_INTERVAL,
                 max_workers: int = MAX_WORKERS) -> None:
        self._store = store
        self._authn = authenticator
        self._cert_pem, self._key_pem = tls
        self._address = address
        self._bookmark_interval = bookmark_interval
        self._max_workers = max_workers
        self._encoder = encoding.EventEncoder()
        self._server: grpc.Server | None = None
        self._stopping = threading.Event()
        self._watchers: set[NodeWatcher] = set()
        self._watchers_lock = threading.Lock()
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers,
                                                        thread_name_prefix="controlplane"),
                             options=SERVER_OPTIONS,
                             maximum_concurrent_rpcs=self._max_workers)
        server.add_generic_rpc_handlers((self._handlers(),))
        creds = grpc.ssl_server_credentials([(self._key_pem, self._cert_pem)])
        self.port = server.add_secure_port(self._address, creds)
        if self.port == 0:
            raise OSError(f"cannot listen on {self._address}")
        server.start()
        self._server = server
        log.info("control-plane API listening address=%s port=%d", self._address, self.port)

    def stop(self, grace: float = 1.0) -> None:
        if self._server is None:
            return
        self._stopping.set()
        with self._watchers_lock:
            watchers = list(self._watchers)
        for w in watchers:
            w.wake()
        self._server.stop(grace).wait(grace + 5)
        self._server = None
        log.info("control-plane API stopped")

    def _handlers(self) -> grpc.GenericRpcHandler:
        def unary(fn: Callable[..., bytes], request_type: Any) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=request_type.FromString, response_serializer=_bytes)

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Watch": grpc.unary_stream_rpc_method_handler(
                self._watch, request_deserializer=pb.WatchRequest.FromString,
                response_serializer=_bytes),
            "ListNetworkPolicies": unary(self._lister(ObjectKind.NETWORK_POLICY),
                                         pb.ListRequest),
            "ListAppliedToGroups": unary(self._lister(ObjectKind.APPLIED_TO_GROUP),
                                         pb.ListRequest),
            "ListAddressGroups": unary(self._lister(ObjectKind.ADDRESS_GROUP), pb.ListRequest),
            "GetNetworkPolicy": unary(self._getter(ObjectKind.NETWORK_POLICY), pb.GetRequest),
            "GetAppliedToGroup": unary(self._getter(ObjectKind.APPLIED_TO_GROUP),
                                       pb.GetRequest),
            "GetAddressGroup": unary(self._getter(ObjectKind.ADDRESS_GROUP), pb.GetRequest),
        })

    # --- authentication ----------------------------------------------------------------

    def _identity(self, context: grpc.ServicerContext) -> Identity:
        token = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, rest = value.partition(" ")
                if scheme.lower() == "bearer":
                    token = rest.strip()
        if not token:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no bearer token")
        try:
            identity = self._authn.authenticate(token)
        except AuthUnavailableError as e:
            log.warning("cannot authenticate caller peer=%s error=%s", context.peer(), e)
            _abort(context, grpc.StatusCode.UNAVAILABLE, "cannot verify token now")
        if identity is None:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")
        return identity

    def _query_node(self, identity: Identity, asked: str, context: grpc.ServicerContext
                    ) -> str | None:
        """The node whose span filters a query: a node identity sees only its own."""
        if identity.node is None:
            return asked or None
        if asked and asked != identity.node:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                   f"{identity.username} may only query node {identity.node}")
        return identity.node

    # --- queries -------------------------------------------------------------------------

    def _lister(self, kind: ObjectKind) -> Callable[[pb.ListRequest, grpc.ServicerContext],
                                                    bytes]:
        def handle(request: pb.ListRequest, context: grpc.ServicerContext) -> bytes:
            node = self._query_node(self._identity(context), request.node_name, context)
            return encoding.list_bytes(self._store.list(kind, node=node))
        return handle

    def _getter(self, kind: ObjectKind) -> Callable[[pb.GetRequest, grpc.ServicerContext],
                                                    bytes]:
        def handle(request: pb.GetRequest, context: grpc.ServicerContext) -> bytes:
            node = self._query_node(self._identity(context), request.node_name, context)
            found = self._store.list(kind, node=node, name=request.name)
            if not found:
                _abort(context, grpc.StatusCode.NOT_FOUND, f"{kind} {request.name} not found")
            return encoding.item_bytes(*found[0])
        return handle

    # --- watch -----------------------------------------------------------------------------

    def _watch(self, request: pb.WatchRequest, context: grpc.ServicerContext
               ) -> Iterator[bytes]:
        identity = self._identity(context)
        node = request.node_name
        if identity.node is None:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                   f"{identity.username} is not a node and may not watch")
        if node != identity.node:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                   f"{identity.username} may only watch node {identity.node}, not {node!r}")
        watcher = self._store.watch(node)
        context.add_callback(watcher.wake)
        with self._watchers_lock:
            self._watchers.add(watcher)
        try:
            first = watcher.start(request.resource_version)
            if first is None:
                log.info("watch resumed node=%s version=%s", node, request.resource_version)
                yield encoding.start_response(True, request.resource_version)
            else:
                log.info("watch starts with snapshot node=%s version=%s requested=%s", node,
                         first.version, request.resource_version or "-")
                yield from self._snapshot(first)
            last_sent = time.monotonic()
            while context.is_active() and not self._stopping.is_set():
                out = watcher.next(timeout=self._bookmark_interval)
                if isinstance(out, Snapshot):
                    yield from self._snapshot(out)
                elif out:
                    yield self._encoder.events_response(out[-1][0], [ev for _, ev in out])
                elif time.monotonic() - last_sent >= self._bookmark_interval * 0.9:
                    yield encoding.bookmark_response(watcher.bookmark())
                else:
                    continue
                last_sent = time.monotonic()
        finally:
            with self._watchers_lock:
                self._watchers.discard(watcher)
            watcher.close()
            log.info("watch ended node=%s", node)

    def _snapshot(self, snap: Snapshot) -> Iterator[bytes]:
        yield encoding.start_response(False)
        objects = [*snap.address_groups, *snap.applied_to_groups, *snap.policies]
        for i in range(0, len(objects), SNAPSHOT_BATCH):
            events = [WatchEvent(EventType.ADDED, kind_of(o), o.name, o)
                      for o in objects[i:i + SNAPSHOT_BATCH]]
            yield self._encoder.events_response("", events, shared=False)
        yield encoding.snapshot_end_response(snap.version)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("unreachable: abort raises")
