"""Listening sockets inside another network namespace.

A socket belongs to the namespace it was created in, whichever thread later uses it.
So a short-lived thread enters the namespace (setns only affects the calling thread),
creates, binds and listens, and exits; the event loop then serves the socket as usual.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


def listen_in_netns(netns: str, host: str, port: int, backlog: int = 512) -> socket.socket:
    """A non-blocking listening TCP socket bound to host:port inside /run/netns/<netns>."""
    result: dict[str, object] = {}

    def work() -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(backlog)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            result["sock"] = sock
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    # The thread ends right after: its changed namespace dies with it.
    t = threading.Thread(target=work, name=f"netns-listen-{netns}", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["sock"]  # type: ignore[return-value]
