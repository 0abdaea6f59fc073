"""Network namespace primitives: create/delete named netns, act inside one from a thread.

Entering a netns with setns(2) only changes the calling thread, so work that must see a
namespace's /proc/sys/net or talk ioctl to its devices runs in a short-lived thread
instead of a subprocess (``ip netns exec`` costs ~5 ms per call).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import fcntl
import logging
import os
import socket
import struct
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from pyroute2 import netns as pr_netns

log = logging.getLogger("antrea.lab.netns")

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x00000017

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def path(name: str) -> str:
    return str(NETNS_RUN_DIR / name)


def exists(name: str) -> bool:
    return (NETNS_RUN_DIR / name).exists()


_shared_checked = False


def ensure_shared_run_dir() -> None:
    """Make /run/netns a shared mount point, as ``ip netns add`` does.

    Then a netns created here also appears in mount namespaces cloned from this one
    later (``ip netns exec`` makes them slaves), e.g. inside a kubelet's.
    """
    global _shared_checked
    if _shared_checked:
        return
    NETNS_RUN_DIR.mkdir(parents=True, exist_ok=True)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(NETNS_RUN_DIR):
            if any(f.startswith("shared:") for f in fields[6:fields.index("-")]):
                _shared_checked = True
                return
            break
    else:
        subprocess.run(["mount", "--bind", str(NETNS_RUN_DIR), str(NETNS_RUN_DIR)],
                       check=True, capture_output=True)
    subprocess.run(["mount", "--make-shared", str(NETNS_RUN_DIR)], check=True,
                   capture_output=True)
    _shared_checked = True


def enter_mount_ns(ns_path: str) -> None:
    """Move this (single-threaded) process into the mount namespace at ``ns_path``."""
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns(mnt {ns_path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def ensure(name: str) -> bool:
    """Create the named netns unless it exists; True if it was created now."""
    if exists(name):
        return False
    ensure_shared_run_dir()
    pr_netns.create(name)
    log.debug("created netns name=%s", name)
    return True


def delete(name: str) -> bool:
    """Delete a named netns (its devices go with it); False if it was not there."""
    if not exists(name):
        return False
    try:
        pr_netns.remove(name)
    except OSError as exc:
        # A stale mount point without a namespace behind it: drop the file anyway.
        log.warning("netns remove failed name=%s err=%s", name, exc)
        with contextlib.suppress(OSError):
            os.unlink(path(name))
    log.debug("deleted netns name=%s", name)
    return True


def run_in(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has entered netns ``name``."""

    def target() -> T:
        fd = os.open(path(name), os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({name}): {os.strerror(err)}")
        finally:
            os.close(fd)
        return fn()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(target).result()


def set_sysctls(name: str, values: Mapping[str, str]) -> None:
    """Write ``net.*`` sysctls inside netns ``name`` (keys in dotted form)."""

    def write() -> None:
        for key, value in values.items():
            Path("/proc/sys", *key.split(".")).write_text(str(value))

    run_in(name, write)


def disable_tx_checksum(name: str, ifname: str) -> None:
    """``ethtool -K <ifname> tx off`` inside netns ``name``.

    Userspace OVS sees partial checksums from veth TX offload and its conntrack then
    marks TCP invalid; turning TX checksumming off also drops the TSO that depends on it.
    """

    def apply() -> None:
        value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
        ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)

    run_in(name, apply)
