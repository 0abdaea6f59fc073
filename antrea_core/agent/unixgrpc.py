"""A grpc thread-pool server on a unix socket that only root may connect to.

The agent serves two local APIs this way (CNI for antrea-cni, the query API for antctl).
Both need the same care: refuse a socket another live agent serves, replace one a dead
agent left behind, make the socket 0600 from the moment it exists, and remove it on stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

log = logging.getLogger("antrea.agent.unixgrpc")


class UnixGrpcServer:
    """``add_servicers(server)`` registers the services; ``what`` names the server in
    logs and errors ("CNI server", "agent query API")."""

    def __init__(self, socket_path: str | os.PathLike[str],
                 add_servicers: Callable[[grpc.Server], None], *, what: str,
                 max_workers: int, thread_name_prefix: str) -> None:
        self.socket_path = Path(socket_path)
        self.what = what
        self.max_workers = max_workers
        self._add_servicers = add_servicers
        self._thread_name_prefix = thread_name_prefix
        self._grpc: grpc.Server | None = None

    @property
    def running(self) -> bool:
        return self._grpc is not None

    def start(self) -> None:
        """Bind and serve. Raises RuntimeError if a live process serves the socket."""
        self._prepare_socket_path()
        server = grpc.server(futures.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix=self._thread_name_prefix))
        self._add_servicers(server)
        # grpc binds inside add_insecure_port; the umask makes the socket 0600 from its
        # first instant, so no other user can connect in a window before a chmod.
        old = os.umask(0o177)
        try:
            server.add_insecure_port(f"unix:{self.socket_path}")
        finally:
            os.umask(old)
        os.chmod(self.socket_path, 0o600)  # in case grpc ever binds later than we think
        server.start()
        self._grpc = server
        log.info("%s listening socket=%s workers=%d", self.what, self.socket_path,
                 self.max_workers)

    def stop(self, grace: float | None) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds) and remove the socket."""
        if self._grpc is None:
            return
        self._grpc.stop(grace).wait()
        self._grpc = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log.info("%s stopped socket=%s", self.what, self.socket_path)

    def _prepare_socket_path(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not self.socket_path.exists():
            return
        # A live socket means another agent serves it: refuse rather than steal it.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket_path))
        except OSError:
            self.socket_path.unlink()  # stale, from an agent that died
        else:
            raise RuntimeError(f"another process is serving the {self.what} on "
                               f"{self.socket_path}")
        finally:
            probe.close()
