"""Clients of the controller's ControlPlane gRPC API.

`ControllerWatch` keeps an agent's NetworkPolicy cache in step with the controller: one
Watch stream for its node, events fed in order into a `PolicyEventHandler`. When the
stream breaks it reconnects with backoff and resumes from the last resource version it
applied (the controller then sends only what was missed, or a snapshot). While
disconnected the handler keeps what it holds: policies stay enforced (never fail open).

`ControlPlaneQueryClient` is antctl's: list/get objects with their spans.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import grpc

from antrea_core.apis import controlplane_codec as codec
from antrea_core.apis import controlplane_pb2 as pb
from antrea_core.apis import controlplane_pb2_grpc as pb_grpc
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    ControlPlaneObject,
    NetworkPolicy,
    ObjectKind,
    PolicyEventHandler,
)

log = logging.getLogger("antrea.agent.controlplane")

TokenSource = str | Callable[[], str]
MAX_MESSAGE = 512 * 1024 * 1024
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0


def channel_options(server_name: str | None) -> list[tuple[str, object]]:
    opts: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        # Notice a vanished controller (no FIN, e.g. its node died) within ~40 s.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]
    if server_name:
        # The certificate is checked against this name instead of the address's host
        # (e.g. connecting by IP to a certificate issued for a DNS name).
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts


def secure_channel(address: str, ca_pem: bytes, server_name: str | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.secure_channel(address, creds, options=channel_options(server_name))


# (address, CA bundle) of the controller as it is now, or None when unknown.
Resolver = Callable[[], tuple[str, bytes] | None]


def _token(source: TokenSource) -> str:
    return source() if callable(source) else source


class ControllerWatch:
    """Streams `node_name`'s control-plane events into `handler` from a thread.

    `resolve`, when given, is asked again for the controller's (address, CA) before each
    reconnect: a rescheduled controller pod comes back at another address (and with
    another CA when it generated its own), which the agent would otherwise never reach.
    It returns None when it cannot tell (the old ones are kept).
    """

    def __init__(self, address: str, ca_pem: bytes, token_source: TokenSource,
                 node_name: str, handler: PolicyEventHandler, *,
                 server_name: str | None = None, initial_backoff: float = INITIAL_BACKOFF,
                 max_backoff: float = MAX_BACKOFF, resolve: Resolver | None = None) -> None:
        self.address = address
        self._resolve = resolve
        self.node_name = node_name
        self._ca_pem = ca_pem
        self._token_source = token_source
        self._handler = handler
        self._server_name = server_name
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._version = ""
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._connected = threading.Event()
        self._call: grpc.Future | None = None
        self._call_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.snapshots = 0  # full snapshots received (resumes do not count)
        self.last_error: str | None = None

    @property
    def resource_version(self) -> str:
        """The last version applied: where a reconnect resumes."""
        return self._version

    @property
    def connected(self) -> bool:
        """A stream is open and in sync (snapshot applied or resumed)."""
        return self._connected.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait until the handler holds a full state (first snapshot or a resume)."""
        return self._synced.wait(timeout)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"controlplane-watch-{self.node_name}")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._call_lock:
            if self._call is not None:
                self._call.cancel()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        delay = self._initial_backoff
        channel = secure_channel(self.address, self._ca_pem, self._server_name)
        stub = pb_grpc.ControlPlaneStub(channel)
        try:
            while not self._stop.is_set():
                if self._stream_once(stub):
                    delay = self._initial_backoff
                if self._stop.is_set():
                    break
                # Jitter spreads the reconnects of many agents after a controller restart.
                wait = delay * random.uniform(0.8, 1.2)
                log.info("reconnecting to controller in %.1fs node=%s version=%s",
                         wait, self.node_name, self._version or "-")
                self._stop.wait(wait)
                delay = min(delay * 2, self._max_backoff)
                if self._moved():
                    channel.close()
                    channel = secure_channel(self.address, self._ca_pem, self._server_name)
                    stub = pb_grpc.ControlPlaneStub(channel)
        finally:
            channel.close()

    def _moved(self) -> bool:
        """Ask `resolve` where the controller is now; True when that changed."""
        if self._resolve is None or self._stop.is_set():
            return False
        try:
            found = self._resolve()
        except Exception as exc:  # the API server may be down too: keep what we have
            log.info("controller address not re-resolved node=%s err=%s", self.node_name, exc)
            return False
        if found is None or found == (self.address, self._ca_pem):
            return False
        log.warning("controller moved node=%s from=%s to=%s ca_changed=%s", self.node_name,
                    self.address, found[0], found[1] != self._ca_pem)
        self.address, self._ca_pem = found
        return True

    def _stream_once(self, stub: pb_grpc.ControlPlaneStub) -> bool:
        """One Watch stream until it ends; True when it got in sync (reset backoff)."""
        in_sync = False
        try:
            metadata = [("authorization", f"Bearer {_token(self._token_source)}")]
            request = pb.WatchRequest(node_name=self.node_name,
                                      resource_version=self._version)
            call = stub.Watch(request, metadata=metadata)
            with self._call_lock:
                self._call = call
                if self._stop.is_set():
                    call.cancel()
            in_sync = self._consume(call)
            log.warning("controller closed the watch node=%s", self.node_name)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            if code != grpc.StatusCode.CANCELLED or not self._stop.is_set():
                self.last_error = f"{code}: {e.details() if hasattr(e, 'details') else e}"
                log.warning("watch failed, keeping current policies node=%s error=%s",
                            self.node_name, self.last_error)
        except Exception:
            # The handler failed on an event: its state may be partial, so the next stream
            # starts from a snapshot to converge.
            log.exception("applying control-plane events failed; resyncing node=%s",
                          self.node_name)
            self._version = ""
        finally:
            self._connected.clear()
            with self._call_lock:
                self._call = None
        return in_sync

    def _consume(self, call: grpc.Future) -> bool:
        in_sync = False
        snapshot: tuple[list[NetworkPolicy], list[AppliedToGroup],
                        list[AddressGroup]] | None = None
        for resp in call:
            body = resp.WhichOneof("body")
            if body == "events":
                events = [codec.event_from_pb(e) for e in resp.events.events]
                if snapshot is not None:
                    for ev in events:
                        if isinstance(ev.obj, NetworkPolicy):
                            snapshot[0].append(ev.obj)
                        elif isinstance(ev.obj, AppliedToGroup):
                            snapshot[1].append(ev.obj)
                        elif isinstance(ev.obj, AddressGroup):
                            snapshot[2].append(ev.obj)
                else:
                    for ev in events:
                        self._handler.apply(ev)
            elif body == "start":
                if resp.start.resumed:
                    in_sync = True
                    self._mark_in_sync("resumed")
                else:
                    snapshot = ([], [], [])
                    self._connected.clear()
            elif body == "snapshot_end" and snapshot is not None:
                self._handler.replace_all(*snapshot)
                log.info("applied snapshot node=%s policies=%d applied_to_groups=%d "
                         "address_groups=%d version=%s", self.node_name, len(snapshot[0]),
                         len(snapshot[1]), len(snapshot[2]), resp.resource_version)
                snapshot = None
                self.snapshots += 1
                in_sync = True
                self._version = resp.resource_version
                self._mark_in_sync("snapshot")
                continue
            if resp.resource_version and snapshot is None:
                self._version = resp.resource_version
        return in_sync

    def _mark_in_sync(self, how: str) -> None:
        self.last_error = None
        self._connected.set()
        self._synced.set()
        log.debug("watch in sync node=%s how=%s version=%s", self.node_name, how,
                  self._version)


class QueryError(Exception):
    """A query the controller refused or could not answer."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


_QUERIES = {
    ObjectKind.NETWORK_POLICY: ("ListNetworkPolicies", "GetNetworkPolicy",
                                codec.policy_from_pb),
    ObjectKind.APPLIED_TO_GROUP: ("ListAppliedToGroups", "GetAppliedToGroup",
                                  codec.applied_to_group_from_pb),
    ObjectKind.ADDRESS_GROUP: ("ListAddressGroups", "GetAddressGroup",
                               codec.address_group_from_pb),
}


class ControlPlaneQueryClient:
    """antctl's client: objects with their spans, as the caller may see them."""

    def __init__(self, address: str, ca_pem: bytes, token: str, *,
                 server_name: str | None = None, timeout: float = 30.0) -> None:
        self._channel = secure_channel(address, ca_pem, server_name)
        self._stub = pb_grpc.ControlPlaneStub(self._channel)
        self._metadata = [("authorization", f"Bearer {token}")]
        self._timeout = timeout

    def list(self, kind: ObjectKind, name: str | None = None, node: str | None = None
             ) -> list[tuple[ControlPlaneObject, frozenset[str]]]:
        """Objects of `kind` (only `name` when given; [] if it does not exist), optionally
        only those whose span holds `node`."""
        list_rpc, get_rpc, decode = _QUERIES[kind]
        try:
            if name is not None:
                item = getattr(self._stub, get_rpc)(
                    pb.GetRequest(name=name, node_name=node or ""),
                    metadata=self._metadata, timeout=self._timeout)
                items = [item]
            else:
                items = list(getattr(self._stub, list_rpc)(
                    pb.ListRequest(node_name=node or ""), metadata=self._metadata,
                    timeout=self._timeout).items)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return []
            raise QueryError(e.code(), e.details() or "") from None
        return [(decode(i.object), frozenset(i.span)) for i in items]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ControlPlaneQueryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
