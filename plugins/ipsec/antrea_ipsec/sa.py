"""IKEv2 connections to peer nodes, configured in one node's charon over VICI.

One connection per peer node, named from the peer's node name, with one CHILD SA in
tunnel mode (the only mode kernel-libipsec has) whose selectors are the two nodes' tunnel
IPs, restricted to UDP: the kernel VXLAN packets between the nodes. The SA is started as
soon as it is loaded (`start_action=trap` does not work with kernel-libipsec) and
restarted when the peer stops answering (DPD) or closes it, so a restarted peer charon
brings it back by itself.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

import vici
import vici.exception

log = logging.getLogger("antrea.agent.ipsec.sa")

# In order of preference. AES-GCM and ECP need the openssl plugin (optional, see
# charon.OPTIONAL_PLUGINS); without it, charon skips them and CBC + HMAC + MODP remain.
IKE_PROPOSALS = ("aes128gcm16-prfsha256-ecp256", "aes128-sha256-modp2048")
ESP_PROPOSALS = ("aes128gcm16", "aes128-sha256")
PSK_ID = "antrea-ipsec-psk"


class IPsecError(RuntimeError):
    """A VICI request failed; the message names the request and the node's socket."""


@dataclass(frozen=True)
class Peer:
    """A remote node: its name and the IPs IKE and the tunnel use on both ends."""

    node_name: str
    local_ip: str  # our IKE address (underlay)
    remote_ip: str  # the peer's IKE address
    local_tunnel_ip: str | None = None  # defaults to local_ip
    remote_tunnel_ip: str | None = None  # defaults to remote_ip

    @property
    def conn_name(self) -> str:
        return conn_name(self.node_name)


@dataclass(frozen=True)
class ChildSA:
    name: str
    state: str  # INSTALLED, REKEYING, ...
    mode: str
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    spi_in: str
    spi_out: str
    bytes_in: int
    bytes_out: int
    encryption: str  # negotiated ESP algorithm, e.g. AES_GCM_16-128

    @property
    def installed(self) -> bool:
        return self.state == "INSTALLED"


@dataclass(frozen=True)
class IkeSA:
    name: str
    state: str  # ESTABLISHED, CONNECTING, ...
    local_host: str
    remote_host: str
    children: tuple[ChildSA, ...]

    @property
    def established(self) -> bool:
        return self.state == "ESTABLISHED"


def conn_name(node_name: str) -> str:
    """The VICI connection (and CHILD SA) name for a peer node."""
    return "antrea-" + re.sub(r"[^A-Za-z0-9.-]", "-", node_name)


def _ts(address: str) -> str:
    prefix = 32 if isinstance(ip_address(address), IPv4Address) else 128
    return f"{address}/{prefix}[udp]"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _alg(child: dict[str, Any]) -> str:
    name = _s(child.get("encr-alg", ""))
    size = _s(child.get("encr-keysize", ""))
    return f"{name}-{size}" if size else name


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(_s(v) for v in value) if isinstance(value, list) else ()


class SAManager:
    """The connections of one node's charon, reached at its VICI socket."""

    def __init__(self, vici_socket: Path, local_node: str, timeout: float = 10.0) -> None:
        self.vici_socket = vici_socket
        self.local_node = local_node
        self.timeout = timeout

    @contextmanager
    def _session(self, what: str) -> Iterator[vici.Session]:
        """A fresh session per request: charon may have restarted since the last one."""
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.vici_socket))
            yield vici.Session(sock)
        except (OSError, vici.exception.SessionException,
                vici.exception.CommandException,
                vici.exception.DeserializationException) as e:
            raise IPsecError(f"VICI {what} at {self.vici_socket}: {e}") from e
        finally:
            sock.close()

    def load_psk(self, psk: str) -> None:
        """The pre-shared key used with every peer (no owners: any identity)."""
        with self._session("load-shared") as s:
            s.load_shared({"id": PSK_ID, "type": "IKE", "data": psk})

    def load_peer(self, peer: Peer) -> None:
        """Load (or replace) the connection to `peer`; charon initiates it at once."""
        local_tip = peer.local_tunnel_ip or peer.local_ip
        remote_tip = peer.remote_tunnel_ip or peer.remote_ip
        name = peer.conn_name
        conn = {
            "version": "2",
            "local_addrs": [peer.local_ip],
            "remote_addrs": [peer.remote_ip],
            "proposals": list(IKE_PROPOSALS),
            "encap": "yes",  # libipsec only speaks ESP-in-UDP
            "dpd_delay": "5s",
            "keyingtries": "0",  # keep trying while the peer is down
            "unique": "replace",
            "local": {"auth": "psk", "id": self.local_node},
            "remote": {"auth": "psk", "id": peer.node_name},
            "children": {
                name: {
                    "mode": "tunnel",
                    "local_ts": [_ts(local_tip)],
                    "remote_ts": [_ts(remote_tip)],
                    "esp_proposals": list(ESP_PROPOSALS),
                    "start_action": "start",
                    "dpd_action": "restart",
                    "close_action": "restart",
                },
            },
        }
        with self._session(f"load-conn {name}") as s:
            s.load_conn({name: conn})
        log.info("loaded IPsec connection conn=%s local=%s remote=%s ts=%s<->%s",
                 name, peer.local_ip, peer.remote_ip, local_tip, remote_tip)

    def initiate(self, node_name: str, timeout: float = 15.0) -> None:
        """Initiate the CHILD SA to `node_name` and wait until charon reports the result."""
        name = conn_name(node_name)
        with self._session(f"initiate {name}") as s:
            s.transport.socket.settimeout(timeout + 5)
            for _ in s.initiate({"child": name, "ike": name,
                                 "timeout": str(int(timeout * 1000))}):
                pass  # control-log lines; the result is the command's success

    def unload_peer(self, node_name: str) -> None:
        """Remove the connection to `node_name` and close its SAs (no restart)."""
        self.unload_conn(conn_name(node_name))

    def unload_conn(self, name: str) -> None:
        """Remove connection `name` and close its SAs (no restart)."""
        with self._session(f"unload-conn {name}") as s:
            s.unload_conn({"name": name})
        try:
            with self._session(f"terminate {name}") as s:
                for _ in s.terminate({"ike": name, "force": "yes", "timeout": "-1"}):
                    pass
        except IPsecError as e:
            if "no matching SAs" not in str(e):  # already gone
                raise
        log.info("unloaded IPsec connection conn=%s", name)

    def connections(self) -> list[str]:
        with self._session("get-conns") as s:
            return [_s(c) for c in s.get_conns().get("conns", [])]

    def list_sas(self) -> list[IkeSA]:
        with self._session("list-sas") as s:
            rows = list(s.list_sas())
        out = []
        for row in rows:
            for ike_name, ike in row.items():
                children = tuple(
                    ChildSA(name=_s(c.get("name", key)), state=_s(c.get("state", "")),
                            mode=_s(c.get("mode", "")), local_ts=_strs(c.get("local-ts")),
                            remote_ts=_strs(c.get("remote-ts")),
                            spi_in=_s(c.get("spi-in", "")), spi_out=_s(c.get("spi-out", "")),
                            bytes_in=int(c.get("bytes-in", 0)),
                            bytes_out=int(c.get("bytes-out", 0)),
                            encryption=_alg(c))
                    for key, c in ike.get("child-sas", {}).items())
                out.append(IkeSA(name=_s(ike_name), state=_s(ike.get("state", "")),
                                 local_host=_s(ike.get("local-host", "")),
                                 remote_host=_s(ike.get("remote-host", "")),
                                 children=children))
        return out

    def child_installed(self, node_name: str) -> bool:
        """Is a CHILD SA to `node_name` installed (traffic to it is encrypted)?"""
        name = conn_name(node_name)
        return any(c.name == name and c.installed
                   for ike in self.list_sas() if ike.name == name for c in ike.children)


