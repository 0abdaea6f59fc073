"""Listening sockets inside another network namespace.

A socket belongs to the namespace it was created in, whichever thread later uses it: a
short-lived thread enters the namespace, creates, binds and listens; the event loop then
serves the socket as usual.
"""

from __future__ import annotations

import socket

from antrea_lab.node.netns import run_in


def listen_in_netns(netns: str, host: str, port: int, backlog: int = 512) -> socket.socket:
    """A non-blocking listening TCP socket bound to host:port inside /run/netns/<netns>."""

    def listen() -> socket.socket:
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
        return sock

    return run_in(netns, listen)
