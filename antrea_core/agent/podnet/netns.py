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
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import IPRoute

CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def run_in_netns(netns_path: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a throw-away thread that entered the netns at ``netns_path`` (None:
    right here). What it creates (sockets) stays in that netns; what it opens under
    /proc/sys/net is that netns' view."""
    if netns_path is None:
        return fn()
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    outcome: list[Any] = []

    def work() -> None:
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            outcome.append(("ok", fn()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(("err", exc))

    try:
        thread = threading.Thread(target=work, name="netns-worker", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    kind, value = outcome[0]
    if kind == "err":
        raise value
    return value


def socket_in_netns(netns_path: str, family: int, type_: int, proto: int = 0
                    ) -> socket.socket:
    """A socket created inside the netns at ``netns_path`` (/run/netns/x, /proc/pid/ns/net).

    Raises FileNotFoundError if the path does not exist, OSError if it is not a netns.
    """
    return run_in_netns(netns_path, lambda: socket.socket(family, type_, proto))


def write_sysctls(netns_path: str | None, values: dict[str, str]) -> None:
    """Write /proc/sys/net/... keys (``ipv4/conf/eth0/arp_ignore``) in that netns."""

    def write() -> None:
        for key, value in values.items():
            with open(f"/proc/sys/net/{key}", "w") as f:
                f.write(value)

    run_in_netns(netns_path, write)


NETLINK_ROUTE = 0


def open_iproute(netns_path: str | None) -> IPRoute:
    """A pyroute2 IPRoute whose netlink socket lives in that netns (None: our own).
    Raises FileNotFoundError / OSError like socket_in_netns."""
    if netns_path is None:
        return IPRoute()
    sock = socket_in_netns(netns_path, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    return IPRoute(use_socket=sock)
