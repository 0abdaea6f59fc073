"""The two ethtool ioctls the agent needs: read and set TX checksum offload.

Userspace OVS (datapath netdev) receives packets from a pod's veth with partial
checksums when TX checksum offload is on, and its conntrack then marks TCP invalid, so
stateful flows drop it. ``ethtool -K eth0 tx off`` in the pod fixes that. The ioctl acts
on the netns of the socket it is issued on (see podnet.netns.socket_in_netns).
The lab's antrea_lab.node.netns.disable_tx_checksum could reuse this.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017


def _ethtool_value(sock: socket.socket, ifname: str, cmd: int, data: int = 0) -> int:
    value = ctypes.create_string_buffer(struct.pack("II", cmd, data))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return struct.unpack_from("II", value.raw)[1]


def tx_checksum(sock: socket.socket, ifname: str) -> bool:
    """Whether TX checksum offload is on for ``ifname`` (in the socket's netns)."""
    return bool(_ethtool_value(sock, ifname, ETHTOOL_GTXCSUM))


def set_tx_checksum(sock: socket.socket, ifname: str, enabled: bool) -> None:
    """``ethtool -K <ifname> tx on|off``; turning it off also turns off TSO, which needs it."""
    _ethtool_value(sock, ifname, ETHTOOL_STXCSUM, int(enabled))
