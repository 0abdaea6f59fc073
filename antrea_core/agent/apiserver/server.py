"""The agent's local query API (antctl's "agent mode"): gRPC on a unix socket, mode 0600.

Read-only: it answers from the interface store, the pipeline layout and a flow dump of the
bridge; nothing here changes agent state. Like the CNI server it runs on grpc's thread
pool: the interface store is thread-safe and the layout is immutable after start-up.
Failures become gRPC status codes here, once (NOT_FOUND for an unknown table or pod,
UNAVAILABLE when the bridge cannot be dumped).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import grpc

from antrea_core.agent.apiserver import flows as flowdump
from antrea_core.agent.bridge.interface_store import InterfaceConfig, InterfaceStore
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.agent.unixgrpc import UnixGrpcServer
from antrea_core.apis import agentquery_pb2 as pb
from antrea_core.apis import agentquery_pb2_grpc as pb_grpc

log = logging.getLogger("antrea.agent.apiserver")

SOCKET_NAME = "agentquery.sock"


def default_socket_path(cni_socket: str | os.PathLike[str]) -> Path:
    """Where the agent serves its query API: next to the CNI socket (Antrea has no config
    key for it; antctl derives the same path)."""
    return Path(cni_socket).parent / SOCKET_NAME


def _pod_interface(config: InterfaceConfig) -> pb.PodInterface:
    return pb.PodInterface(
        pod_namespace=config.pod_namespace, pod_name=config.pod_name,
        interface_name=config.name, ips=list(config.ips), mac=config.mac,
        ofport=config.ofport or 0, container_id=config.container_id)


class _Servicer(pb_grpc.AgentQueryServicer):
    def __init__(self, server: AgentQueryServer) -> None:
        self._server = server

    def ListPodInterfaces(self, request: pb.PodInterfaceRequest,
                          context: grpc.ServicerContext) -> pb.PodInterfaceList:
        return pb.PodInterfaceList(items=[
            _pod_interface(c) for c in self._server.pod_interfaces(request.namespace,
                                                                    request.name)])

    def DumpFlows(self, request: pb.FlowRequest, context: grpc.ServicerContext
                  ) -> pb.FlowList:
        try:
            dumped = self._server.dump_flows(request.table, request.pod_namespace,
                                             request.pod_name)
        except LookupError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc.args[0]))
        except flowdump.FlowDumpError as exc:
            log.warning("flow dump failed error=%s", exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return pb.FlowList(flows=[pb.Flow(table=f.table, table_id=f.table_id, flow=f.flow)
                                  for f in dumped])

    def GetPipeline(self, request: pb.PipelineRequest, context: grpc.ServicerContext
                    ) -> pb.PipelineReply:
        try:
            counts = Counter(f.table_id for f in self._server.dump_flows("", "", ""))
        except flowdump.FlowDumpError as exc:
            log.warning("flow dump failed error=%s", exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return pb.PipelineReply(tables=[
            pb.Table(name=t.name, table_id=t.table_id, stage=t.spec.stage.name,
                     pipeline=t.spec.pipeline.name, next_table=t.next_table or "",
                     miss=t.spec.missing, flow_count=counts.get(t.table_id, 0))
            for t in self._server.layout.tables()])


class AgentQueryServer:
    """Serves antrea.agentquery.v1.AgentQuery on ``socket_path`` (mode 0600).

    ``store`` is the agent's interface store, ``layout`` its pipeline layout; flows are
    dumped from ``<ovs_run_dir>/<bridge_name>.mgmt``.
    """

    def __init__(self, socket_path: str | os.PathLike[str], store: InterfaceStore,
                 layout: PipelineLayout, bridge_name: str, ovs_run_dir: str | os.PathLike[str],
                 *, max_workers: int = 2) -> None:
        self.socket_path = Path(socket_path)
        self.store = store
        self.layout = layout
        self.mgmt = flowdump.mgmt_socket(ovs_run_dir, bridge_name)
        self.max_workers = max_workers
        self._server = UnixGrpcServer(
            self.socket_path,
            lambda server: pb_grpc.add_AgentQueryServicer_to_server(_Servicer(self), server),
            what="agent query API", max_workers=max_workers,
            thread_name_prefix="agentquery")

    # -- queries ------------------------------------------------------------------------
    def pod_interfaces(self, namespace: str = "", name: str = "") -> list[InterfaceConfig]:
        found = [c for c in self.store.containers()
                 if (not namespace or c.pod_namespace == namespace)
                 and (not name or c.pod_name == name)]
        return sorted(found, key=lambda c: (c.pod_namespace, c.pod_name, c.name))

    def dump_flows(self, table: str = "", pod_namespace: str = "", pod_name: str = ""
                   ) -> list[flowdump.DumpedFlow]:
        """Flows of one table (by name) or all, optionally only those of one pod.
        Raises LookupError naming what was not found."""
        table_id = None
        if table:
            if table not in self.layout:
                known = ", ".join(t.name for t in self.layout.tables())
                raise LookupError(f"no table {table!r} in the pipeline; tables: {known}")
            table_id = self.layout.table_id(table)
        filters = None
        if pod_name:
            interfaces = self.store.get_pod(pod_namespace or "default", pod_name)
            if not interfaces:
                raise LookupError(f"pod {pod_namespace or 'default'}/{pod_name} has no "
                                  "interface on this node")
            filters = [flowdump.pod_filter(c.ofport, c.ips, c.mac) for c in interfaces]
        namer = flowdump.TableNamer(self.layout)
        dumped = [namer(line) for line in flowdump.dump_raw(self.mgmt, table_id)]
        return dumped if filters is None else flowdump.select(dumped, filters)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._server.start()
        log.debug("agent query API reads flows from bridge_mgmt=%s", self.mgmt)

    def stop(self, grace: float | None = 1.0) -> None:
        self._server.stop(grace)

    def __enter__(self) -> AgentQueryServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
