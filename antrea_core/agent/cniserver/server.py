"""The agent's CNI gRPC server on a unix socket, dispatching to a CNIHandler.

Concurrency: grpc's synchronous server, i.e. a thread pool. This is the boundary where the
agent accepts threads: handlers run on pool threads, serialised per (container id,
ifname) here, so a handler only has to be safe against calls for *different* pods.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import grpc

from antrea_core.agent.cniserver import deferred_del
from antrea_core.agent.cniserver.errors import INTERNAL_ERROR, CNIError
from antrea_core.agent.cniserver.validation import build_request
from antrea_core.agent.unixgrpc import UnixGrpcServer
from antrea_core.apis import cni_pb2, cni_pb2_grpc
from antrea_core.plugins.context import CNIRequest

log = logging.getLogger("antrea.agent.cniserver")

RESULT_VERSION = "1.0.0"  # handlers answer in this shape; antrea-cni converts for older ones


class CNIHandler(Protocol):
    """Pod networking behind the server. Raise CNIError for failures the runtime should
    see with a specific code; anything else becomes code 100 (internal error)."""

    def add(self, request: CNIRequest) -> Mapping[str, Any]:
        """Set up the attachment; return the CNI 1.0.0 result (interfaces, ips, routes)."""
        ...

    def check(self, request: CNIRequest) -> None:
        """Raise CNIError if the attachment no longer matches what add() set up."""
        ...

    def delete(self, request: CNIRequest) -> None:
        """Release the attachment; succeed when there is nothing (left) to release."""
        ...


class KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: tuple[str, str]) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


def _request_from(command: str, args: cni_pb2.CmdArgs) -> CNIRequest:
    return build_request(command, container_id=args.container_id, netns=args.netns,
                         ifname=args.ifname, args=args.args,
                         network_configuration=args.network_configuration)


class _Servicer(cni_pb2_grpc.CniServicer):
    def __init__(self, server: CNIServer) -> None:
        self._server = server

    def CmdAdd(self, request: cni_pb2.CmdRequest, context: grpc.ServicerContext
               ) -> cni_pb2.CmdResponse:
        return self._server.dispatch("ADD", request.cni_args)

    def CmdCheck(self, request: cni_pb2.CmdRequest, context: grpc.ServicerContext
                 ) -> cni_pb2.CmdResponse:
        return self._server.dispatch("CHECK", request.cni_args)

    def CmdDel(self, request: cni_pb2.CmdRequest, context: grpc.ServicerContext
               ) -> cni_pb2.CmdResponse:
        return self._server.dispatch("DEL", request.cni_args)


class CNIServer:
    """Serves antrea.cni.v1.Cni on ``socket_path`` (mode 0600; its directory is created).

    ``start()`` first replays the DELs antrea-cni queued while no agent was listening
    (see deferred_del), so ``handler`` must be ready when the server starts.
    """

    def __init__(self, socket_path: str | os.PathLike[str], handler: CNIHandler,
                 *, max_workers: int = 8) -> None:
        self.socket_path = Path(socket_path)
        self.handler = handler
        self.max_workers = max_workers
        self._locks = KeyedLocks()
        self._server = UnixGrpcServer(
            self.socket_path,
            lambda server: cni_pb2_grpc.add_CniServicer_to_server(_Servicer(self), server),
            what="CNI server", max_workers=max_workers, thread_name_prefix="cniserver")

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self.replay_deferred_deletes()
        self._server.start()

    def stop(self, grace: float | None = 2.0) -> None:
        self._server.stop(grace)

    def __enter__(self) -> CNIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ---------------------------------------------------------------------
    def dispatch(self, command: str, args: cni_pb2.CmdArgs) -> cni_pb2.CmdResponse:
        """Run one command through validation and the handler; never raises."""
        started = time.monotonic()
        try:
            request = _request_from(command, args)
            with self._locks.hold((request.container_id, request.ifname)):
                result = self._call(request)
        except CNIError as exc:
            log.warning("CNI %s failed container=%s ifname=%s code=%d msg=%s details=%s",
                        command, args.container_id, args.ifname, exc.code, exc.msg,
                        exc.details)
            return cni_pb2.CmdResponse(error=cni_pb2.Error(
                code=exc.code, message=exc.msg, details=exc.details))
        except Exception as exc:
            log.exception("CNI %s crashed container=%s", command, args.container_id)
            return cni_pb2.CmdResponse(error=cni_pb2.Error(
                code=INTERNAL_ERROR, message=f"antrea-agent failed to process CNI {command}",
                details=f"{type(exc).__name__}: {exc}"))
        log.info("CNI %s done container=%s ifname=%s ms=%.1f", command,
                 request.container_id, request.ifname, (time.monotonic() - started) * 1000)
        return cni_pb2.CmdResponse(cni_result=result)

    def _call(self, request: CNIRequest) -> bytes:
        if request.command == "ADD":
            result = dict(self.handler.add(request))
            result["cniVersion"] = RESULT_VERSION
            return json.dumps(result).encode()
        if request.command == "CHECK":
            self.handler.check(request)
        else:
            self.handler.delete(request)
        return b""

    def replay_deferred_deletes(self) -> int:
        """Deliver queued DELs to the handler; returns how many succeeded. A failed one
        stays queued for the next start."""
        queue = deferred_del.queue_dir_for(self.socket_path)
        done = 0
        for path, entry in deferred_del.pending(queue):
            args = cni_pb2.CmdArgs(
                container_id=entry.container_id, netns=entry.netns, ifname=entry.ifname,
                args=entry.args, path=entry.path,
                network_configuration=entry.network_configuration.encode())
            answer = self.dispatch("DEL", args)
            if answer.HasField("error"):
                if answer.error.code >= 100:
                    continue  # the agent's own failure: keep it for the next start
                # A spec-code error (bad request) will never succeed: drop it.
                log.warning("dropping deferred DEL container=%s code=%d msg=%s",
                            entry.container_id, answer.error.code, answer.error.message)
            else:
                done += 1
            path.unlink(missing_ok=True)
        return done
