"""`antrea-cni`: the CNI binary kubelet executes (CNI spec 1.0.0).

A thin client: VERSION is answered here; ADD, CHECK and DEL are validated, then forwarded
to the local antrea-agent over gRPC on its unix socket, and the agent's answer is printed
(the result converted to the configuration's cniVersion) or its error as the spec's error
document. STATUS (a CNI 1.1 verb) is answered by probing the agent.

Network configuration keys read here (besides the spec's):
  cniSocket        the agent's socket (default /var/run/antrea/cni.sock, the agent's
                   own cniSocket default)
  connectTimeout   seconds to wait for the agent to accept the connection (default 3)
  requestTimeout   seconds to wait for the agent's answer (default 60)

When the agent cannot be reached, ADD and CHECK fail with code 11 ("try again later")
after connectTimeout (plus at most 1 s of a last connection attempt), never hang. DEL is
queued on disk for the agent to replay when it starts, and succeeds (why: see
antrea_core/agent/cniserver/deferred_del.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import grpc

from antrea_core.agent.cniserver import deferred_del
from antrea_core.agent.cniserver.errors import (
    INCOMPATIBLE_VERSION,
    INTERNAL_ERROR,
    INVALID_ENVIRONMENT,
    INVALID_NETWORK_CONFIG,
    PLUGIN_NOT_AVAILABLE,
    TRY_AGAIN_LATER,
    CNIError,
)
from antrea_core.agent.cniserver.validation import (
    SUPPORTED_VERSIONS,
    build_request,
    check_version,
    parse_network_config,
)
from antrea_core.apis import cni_pb2, cni_pb2_grpc

log = logging.getLogger("antrea.cni")

DEFAULT_SOCKET = "/var/run/antrea/cni.sock"
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_REQUEST_TIMEOUT = 60.0
# Retry the connection often while the agent is away (it may be restarting), and give
# each connection attempt 1 s for the HTTP/2 handshake: a process that accepts on the
# socket but never speaks gRPC then fails the attempt instead of hanging the call.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 1000),  # gRPC core's minimum connect deadline
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 0),
]
RETRY_PAUSE = 0.05


class AgentUnreachable(Exception):
    """The agent did not accept a connection in time (it is down or starting)."""


def convert_result(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """A CNI 1.0.0 result in the shape of ``version`` (0.3.0 … 1.0.0).

    The 0.3/0.4 shapes are 1.0.0 plus ``ips[].version``; 1.0.0 removed that field.
    """
    out = copy.deepcopy(dict(result))
    out["cniVersion"] = version
    if version != "1.0.0":
        for ip in out.get("ips") or []:
            ip["version"] = "6" if ":" in str(ip.get("address", "")) else "4"
    return out


def _emit(doc: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _fail(exc: CNIError, version: str) -> int:
    _emit(exc.to_dict(version))
    return 1


def _timeout(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CNIError(INVALID_NETWORK_CONFIG, f"invalid {key} {value!r}",
                       "expected a positive number of seconds")
    return float(value)


class AgentClient:
    """One connection to the agent's CNI socket."""

    def __init__(self, socket_path: str, connect_timeout: float, request_timeout: float):
        self.socket_path = socket_path
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._channel = grpc.insecure_channel(f"unix:{socket_path}", options=CHANNEL_OPTIONS)

    def close(self) -> None:
        self._channel.close()

    def wait_ready(self) -> None:
        """Block until the agent accepts a connection (STATUS); AgentUnreachable if not."""
        future = grpc.channel_ready_future(self._channel)
        try:
            future.result(timeout=self.connect_timeout)
        except grpc.FutureTimeoutError:
            raise AgentUnreachable(
                f"no antrea-agent answered on {self.socket_path} within "
                f"{self.connect_timeout:g}s") from None
        finally:
            future.cancel()

    def call(self, command: str, args: cni_pb2.CmdArgs) -> cni_pb2.CmdResponse:
        """One RPC. While the agent cannot be reached the call fails fast (not
        wait_for_ready) and is retried for up to connect_timeout; every command is
        idempotent on the agent, so a retry after an ambiguous failure is safe."""
        stub = cni_pb2_grpc.CniStub(self._channel)
        method = {"ADD": stub.CmdAdd, "CHECK": stub.CmdCheck, "DEL": stub.CmdDel}[command]
        request = cni_pb2.CmdRequest(cni_args=args)
        give_up = time.monotonic() + self.connect_timeout
        while True:
            try:
                return method(request, timeout=self.request_timeout)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                if code == grpc.StatusCode.UNAVAILABLE:
                    if time.monotonic() < give_up:
                        time.sleep(RETRY_PAUSE)
                        continue
                    raise AgentUnreachable(
                        f"no antrea-agent answered on {self.socket_path} within "
                        f"{self.connect_timeout:g}s ({details})") from None
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise CNIError(TRY_AGAIN_LATER, f"antrea-agent did not answer {command} "
                                   f"within {self.request_timeout:g}s", self.socket_path
                                   ) from None
                raise CNIError(INTERNAL_ERROR, f"antrea-agent failed the {command} call",
                               f"gRPC status {code}: {details}") from None


def _client_for(config: Mapping[str, Any]) -> AgentClient:
    return AgentClient(
        str(config.get("cniSocket") or DEFAULT_SOCKET),
        _timeout(config, "connectTimeout", DEFAULT_CONNECT_TIMEOUT),
        _timeout(config, "requestTimeout", DEFAULT_REQUEST_TIMEOUT),
    )


def _run_command(command: str, raw: bytes, env: Mapping[str, str]) -> int:
    config = parse_network_config(raw)
    version = check_version(config)
    try:
        return _forward(command, raw, env, config, version)
    except CNIError as exc:
        return _fail(exc, version)


def _forward(command: str, raw: bytes, env: Mapping[str, str], config: Mapping[str, Any],
             version: str) -> int:
    client = _client_for(config)
    if command == "STATUS":
        # No close(): it would race grpc's connectivity poller; the process ends anyway.
        try:
            client.wait_ready()
        except AgentUnreachable as exc:
            raise CNIError(PLUGIN_NOT_AVAILABLE, "antrea-agent is not available",
                           str(exc)) from None
        return 0
    try:
        fields = dict(container_id=env.get("CNI_CONTAINERID", ""),
                      netns=env.get("CNI_NETNS", ""), ifname=env.get("CNI_IFNAME", ""),
                      args=env.get("CNI_ARGS", ""))
        build_request(command, network_configuration=raw, **fields)  # fail fast, locally
        args = cni_pb2.CmdArgs(path=env.get("CNI_PATH", ""), network_configuration=raw,
                               **fields)
        try:
            answer = client.call(command, args)
        except AgentUnreachable as exc:
            if command == "DEL":
                return _defer_del(client.socket_path, args, str(exc))
            raise CNIError(TRY_AGAIN_LATER, "antrea-agent is unreachable", str(exc)) from None
    finally:
        client.close()
    if answer.HasField("error"):
        err = answer.error
        raise CNIError(err.code, err.message, err.details)
    if command == "ADD":
        _emit(convert_result(json.loads(answer.cni_result), version))
    return 0


def _defer_del(socket_path: str, args: cni_pb2.CmdArgs, why: str) -> int:
    entry = deferred_del.DeferredDel(
        container_id=args.container_id, netns=args.netns, ifname=args.ifname,
        args=args.args, path=args.path,
        network_configuration=args.network_configuration.decode(errors="replace"))
    try:
        where = deferred_del.record(deferred_del.queue_dir_for(socket_path), entry)
    except OSError as exc:
        raise CNIError(TRY_AGAIN_LATER, "antrea-agent is unreachable and the DEL could not "
                       "be queued for it", f"{why}; {exc}") from None
    # stderr is for the runtime's logs; stdout stays empty as the spec wants for DEL.
    sys.stderr.write(f"antrea-cni: {why}; DEL queued for the agent at {where}\n")
    return 0


def main() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        _emit({"cniVersion": "1.0.0", "supportedVersions": list(SUPPORTED_VERSIONS)})
        return 0
    raw = sys.stdin.buffer.read()
    version = "1.0.0"
    with contextlib.suppress(CNIError):  # errors are answered in the caller's version
        version = str(parse_network_config(raw).get("cniVersion") or version)
    try:
        if command not in ("ADD", "CHECK", "DEL", "STATUS", "GC"):
            raise CNIError(INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {command!r}",
                           "expected ADD, CHECK, DEL, STATUS or VERSION")
        if command == "GC":
            # GC arrives only with CNI 1.1 configurations, which we do not claim to speak;
            # stale allocations are swept by the agent itself.
            raise CNIError(INCOMPATIBLE_VERSION, "antrea-cni does not implement GC",
                           f"supported versions: {', '.join(SUPPORTED_VERSIONS)}")
        return _run_command(command, raw, os.environ)
    except CNIError as exc:
        return _fail(exc, version)


if __name__ == "__main__":
    sys.exit(main())
