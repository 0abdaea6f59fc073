"""The agent's gRPC-over-unix-socket server (shared by the CNI server and the query API)."""

from __future__ import annotations

import socket
import stat

import grpc
import pytest

from antrea_core.agent.unixgrpc import UnixGrpcServer

pytestmark = pytest.mark.unit


def echo_service(server: grpc.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request[::-1])
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Echo", {"Reverse": handler})])


def call(path) -> bytes:
    with grpc.insecure_channel(f"unix:{path}") as channel:
        return channel.unary_unary("/test.Echo/Reverse")(b"abc", timeout=10)


def make(path) -> UnixGrpcServer:
    return UnixGrpcServer(path, echo_service, what="echo API", max_workers=1,
                          thread_name_prefix="echo")


def test_serves_on_a_0600_socket_in_a_created_directory_and_removes_it_on_stop(tmp_path):
    path = tmp_path / "run" / "sub" / "echo.sock"
    server = make(path)
    server.start()
    try:
        assert server.running
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert call(path) == b"cba"
    finally:
        server.stop(grace=0)
    assert not server.running and not path.exists()
    server.stop(grace=0)  # stopping twice is harmless


def test_refuses_a_live_socket_and_replaces_a_stale_one(tmp_path):
    path = tmp_path / "echo.sock"
    first = make(path)
    first.start()
    try:
        with pytest.raises(RuntimeError, match="another process is serving the echo API"):
            make(path).start()
        assert call(path) == b"cba"  # the live server was left alone
    finally:
        first.stop(grace=0)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays and nobody listens: what a crashed agent leaves
    second = make(path)
    second.start()
    try:
        assert call(path) == b"cba"
    finally:
        second.stop(grace=0)
