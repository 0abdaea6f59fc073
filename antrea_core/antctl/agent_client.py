"""antctl's client of the local agent's query API (unix socket, see agentquery.proto)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from antrea_core.antctl.errors import AntctlError, NotFound, Unavailable
from antrea_core.apis import agentquery_pb2 as pb
from antrea_core.apis import agentquery_pb2_grpc as pb_grpc

SOCKET_ENV = "ANTREA_AGENT_QUERY_SOCKET"
# antrea-agent's default cniSocket is /var/run/antrea/cni.sock; the query socket sits
# next to it (antrea_core.agent.apiserver.default_socket_path).
DEFAULT_SOCKET = "/var/run/antrea/agentquery.sock"
TIMEOUT = 60.0
# A flow dump of a node with many policies is tens of MB; grpc's default cap is 4 MB.
MAX_MESSAGE = 512 * 1024 * 1024


def default_socket() -> str:
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


class AgentQueryClient:
    def __init__(self, socket_path: str | os.PathLike[str], timeout: float = TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._channel: grpc.Channel | None = None

    def _stub(self) -> pb_grpc.AgentQueryStub:
        if not self.socket_path.exists():
            raise Unavailable(f"no antrea-agent query socket at {self.socket_path}: run antctl "
                              "on a node whose agent is running, or pass --agent-socket")
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                f"unix:{self.socket_path}",
                options=[("grpc.max_receive_message_length", MAX_MESSAGE)])
        return pb_grpc.AgentQueryStub(self._channel)

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub(), method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: grpc.RpcError) -> AntctlError:
        code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
        if code is grpc.StatusCode.NOT_FOUND:
            return NotFound(details)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"antrea-agent at unix:{self.socket_path}: {details}")
        return AntctlError(f"antrea-agent: {code.name}: {details}")

    def pod_interfaces(self, namespace: str = "", name: str = "") -> list[pb.PodInterface]:
        reply = self._call("ListPodInterfaces",
                           pb.PodInterfaceRequest(namespace=namespace, name=name))
        assert isinstance(reply, pb.PodInterfaceList)
        return list(reply.items)

    def flows(self, table: str = "", pod_namespace: str = "", pod_name: str = ""
              ) -> list[pb.Flow]:
        reply = self._call("DumpFlows", pb.FlowRequest(
            table=table, pod_namespace=pod_namespace, pod_name=pod_name))
        assert isinstance(reply, pb.FlowList)
        return list(reply.flows)

    def tables(self) -> list[pb.Table]:
        reply = self._call("GetPipeline", pb.PipelineRequest())
        assert isinstance(reply, pb.PipelineReply)
        return list(reply.tables)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
