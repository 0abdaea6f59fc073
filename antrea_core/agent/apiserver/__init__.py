"""The agent's local query API for antctl (pod interfaces, flows, pipeline layout)."""

from antrea_core.agent.apiserver.server import SOCKET_NAME, AgentQueryServer, default_socket_path

__all__ = ["SOCKET_NAME", "AgentQueryServer", "default_socket_path"]
