"""Sockets bound to another network namespace, without forking.

setns(2) only moves the calling thread, and a socket belongs to the netns it was created
in for its whole life. So a throw-away thread enters the netns, creates the socket and
exits; the socket is then used from any thread. (pyroute2's own netns support forks a
child per socket, which is slow and unsafe in a process that runs gRPC threads.)
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def socket_in_netns(netns_path: str, family: int, type_: int, proto: int = 0
                    ) -> socket.socket:
    """A socket created inside the netns at ``netns_path`` (/run/netns/x, /proc/pid/ns/net).

    Raises FileNotFoundError if the path does not exist, OSError if it is not a netns.
    """
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    outcome: list[socket.socket | BaseException] = []

    def create() -> None:
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            outcome.append(socket.socket(family, type_, proto))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)

    try:
        thread = threading.Thread(target=create, name="netns-socket", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
