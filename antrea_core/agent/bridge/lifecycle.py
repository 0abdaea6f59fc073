"""Idempotent set-up of the node's OVS bridges and their ports.

The agent calls these at every start: each ``ensure_*`` converges OVSDB to the wanted
state whether the object is missing, present and right, or present with an old config
(e.g. ``tunnelType`` changed between restarts), and returns what the agent needs next
(the ofport). Pod ports are added and deleted in batches where possible: OVSDB
transactions cost about the same for 1 or 200 ports (*measured*, OVS 3.1 userspace: 200
veth ports in one transaction 0.6-1.3 s, one transaction per port ≈ 13 ms each), and
vswitchd spends ~12 ms per deleted port in the netdev datapath whatever the batching.
"""

from __future__ import annotations

import logging
import random
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ovsdbapp.backend.ovs_idl import idlutils
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from antrea_core.agent.bridge.interface_store import (
    KEY_TYPE,
    InterfaceConfig,
    InterfaceType,
)
from antrea_core.agent.bridge.ovsdb import OVSDB, InterfaceError, OVSDBError

log = logging.getLogger("antrea.agent.bridge")

ALL_OPENFLOW = ("OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14",
                "OpenFlow15")
FAIL_MODES = ("secure", "standalone")
DATAPATH_TYPES = ("system", "netdev")
# Fixed ofports for the node's infrastructure ports, as Antrea does, so flows can name
# them before the ports exist and they survive port re-creation.
TUNNEL_OFPORT = 1
GATEWAY_OFPORT = 2
RTPROT_KERNEL = 2  # routes the kernel derives from addresses; they move with them
IFA_F_NODAD = 0x02


def random_mac() -> str:
    """A random locally administered unicast MAC."""
    octets = [random.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


def _find(api: Any, table: str, name: str) -> Any:
    return idlutils.row_by_value(api.idl, table, "name", name, None)


def _converge(row: Any, column: str, value: Any) -> None:
    """Write `value` unless the row already has it (maps are replaced, not merged).

    Rows inserted in this transaction have no attribute for unwritten columns; optional
    columns read back as [] or [value].
    """
    current = getattr(row, column, None)
    if isinstance(value, dict):
        same = current is not None and dict(current) == value
    elif isinstance(value, (list, tuple)):
        same = current is not None and list(current) == list(value)
    else:
        same = current is not None and current in (value, [value])
    if not same:
        setattr(row, column, value)


class OVSBridge:
    """One OVS bridge of this node, managed through the agent's `OVSDB` connection."""

    def __init__(self, ovsdb: OVSDB, name: str = "br-int") -> None:
        self.ovsdb = ovsdb
        self.name = name

    # -- the bridge ---------------------------------------------------------------------
    def ensure(self, datapath_type: str = "system", protocols: Sequence[str] = ALL_OPENFLOW,
               fail_mode: str = "secure", mcast_snooping: bool = False,
               other_config: Mapping[str, str] | None = None) -> None:
        """Create the bridge or converge its settings; safe to call at every start.

        ``fail_mode=secure`` keeps vswitchd from installing a NORMAL flow (the agent owns
        every flow); in-band control is disabled because the agent talks to vswitchd over
        its unix management socket, never over the bridge itself. ``other_config`` keys
        set by others are kept.
        """
        if datapath_type not in DATAPATH_TYPES:
            raise ValueError(f"datapath_type {datapath_type!r} not in {DATAPATH_TYPES}")
        if fail_mode not in FAIL_MODES:
            # python-ovs drops an invalid value with a log line instead of failing.
            raise ValueError(f"fail_mode {fail_mode!r} not in {FAIL_MODES}")
        wanted_other = {"disable-in-band": "true", **(other_config or {})}
        api = self.ovsdb.api

        def converge(txn: Any) -> bool:
            br = _find(api, "Bridge", self.name)
            created = br is None
            if created:
                # A bridge needs its LOCAL port: an internal interface of the same name.
                iface = txn.insert(api.tables["Interface"])
                iface.name = self.name
                iface.type = "internal"
                port = txn.insert(api.tables["Port"])
                port.name = self.name
                port.interfaces = [iface]
                br = txn.insert(api.tables["Bridge"])
                br.name = self.name
                br.ports = [port]
                api._ovs.addvalue("bridges", br)
            _converge(br, "datapath_type", datapath_type)
            _converge(br, "protocols", list(protocols))
            _converge(br, "fail_mode", fail_mode)
            _converge(br, "mcast_snooping_enable", mcast_snooping)
            _converge(br, "other_config", {**dict(getattr(br, "other_config", {})),
                                           **wanted_other})
            return created

        created = self.ovsdb.run(converge, f"ensure bridge {self.name}")
        log.info("bridge ready bridge=%s created=%s datapath=%s fail_mode=%s", self.name,
                 created, datapath_type, fail_mode)

    def exists(self) -> bool:
        with self.ovsdb.locked:
            return _find(self.ovsdb.api, "Bridge", self.name) is not None

    def datapath_type(self) -> str:
        with self.ovsdb.locked:
            br = _find(self.ovsdb.api, "Bridge", self.name)
            if br is None:
                raise OVSDBError(f"bridge {self.name} does not exist")
            return br.datapath_type or "system"

    # -- infrastructure ports ---------------------------------------------------------------
    def ensure_gateway_port(self, name: str = "antrea-gw0", mac: str | None = None,
                            mtu: int | None = None,
                            ofport_request: int | None = GATEWAY_OFPORT) -> InterfaceConfig:
        """The host gateway: an internal port; the caller gives it its IP (pyroute2).

        Its MAC is written to the ``mac`` column (a random one on first creation unless
        given): a userspace internal port is a tap vswitchd recreates when it restarts,
        and a new random MAC each time would break neighbours and MAC-matching flows.
        """
        if mac is None:
            existing = self._record(name)
            # Keep the configured MAC, else pin the one in use (or a new one) so the next
            # vswitchd restart keeps it.
            mac = (existing and (existing.mac or existing.mac_in_use)) or random_mac()
        columns: dict[str, Any] = {"type": "internal", "options": {}, "mac": mac}
        if mtu is not None:
            columns["mtu_request"] = mtu
        ofport = self._ensure_port(name, columns, {KEY_TYPE: InterfaceType.GATEWAY.value},
                                   ofport_request)
        # The configured MAC, not mac_in_use: vswitchd refreshes that column later
        # (measured: sometimes still the tap's first random MAC right after commit).
        return InterfaceConfig(name=name, type=InterfaceType.GATEWAY, ofport=ofport,
                               mac=mac, ovs_type="internal")

    def ensure_tunnel_port(self, name: str, driver: Any, dst_port: int = 0,
                           csum: bool = False,
                           ofport_request: int | None = TUNNEL_OFPORT) -> InterfaceConfig:
        """The node's one flow-based tunnel port (``remote_ip=flow``, ``key=flow``).

        `driver` is the loaded tunnel driver (``port_type``, ``port_options``). A driver
        that needs the kernel datapath is refused on a userspace bridge: OVS 3.1 accepts
        an STT port on a netdev bridge without any error and then cannot encapsulate.
        """
        if driver.needs_kernel_datapath:
            datapath = self.datapath_type()
            if datapath != "system":
                raise OVSDBError(
                    f"tunnel port {name}: {driver.port_type} needs the OVS kernel datapath; "
                    f"bridge {self.name} uses datapath_type={datapath}, where OVS accepts "
                    f"the port but cannot encapsulate")
        options = driver.port_options(None, dst_port, csum)
        columns = {"type": driver.port_type, "options": options}
        ofport = self._ensure_port(name, columns, {KEY_TYPE: InterfaceType.TUNNEL.value},
                                   ofport_request)
        return InterfaceConfig(name=name, type=InterfaceType.TUNNEL, ofport=ofport,
                               ovs_type=driver.port_type)

    def ensure_system_port(self, name: str, kind: InterfaceType,
                           ofport_request: int | None = None) -> int:
        """Attach an existing host device (e.g. the uplink) as a port; returns its ofport."""
        return self._ensure_port(name, {"type": "", "options": {}}, {KEY_TYPE: kind.value},
                                 ofport_request)

    # -- pod ports -----------------------------------------------------------------------
    def add_pod_port(self, name: str, external_ids: Mapping[str, str]) -> int:
        """Attach a pod's host-side veth; returns its ofport (see `add_pod_ports`)."""
        return self.add_pod_ports({name: external_ids})[name]

    def add_pod_ports(self, ports: Mapping[str, Mapping[str, str]]) -> dict[str, int]:
        """Attach many pods' host-side veths in one transaction; returns name → ofport.

        `ports` maps the interface name to its external_ids
        (`InterfaceConfig.external_ids`; ``antrea-type=container`` is implied). A port
        that already exists keeps its ofport and gets the new external_ids (CNI ADD may be
        retried). Ports vswitchd cannot open are removed again and reported in one
        `InterfaceError` (``.failed`` name → OVS's error, ``.ofports`` for the rest), so a
        failed ADD leaves nothing behind.
        """
        if not ports:
            return {}
        wanted = {name: {KEY_TYPE: InterfaceType.CONTAINER.value, **ids}
                  for name, ids in ports.items()}
        api = self.ovsdb.api

        def add(txn: Any) -> int:
            br = self._bridge_row()
            owned = set(br.ports)  # once: each br.ports read rebuilds the whole list
            new_ports = []
            for name, ids in wanted.items():
                port = _find(api, "Port", name)
                if port is not None:
                    self._check_owner(port, owned)
                    for iface in port.interfaces:
                        iface.external_ids = ids
                    continue
                iface = txn.insert(api.tables["Interface"])
                iface.name = name
                iface.external_ids = ids
                port = txn.insert(api.tables["Port"])
                port.name = name
                port.interfaces = [iface]
                new_ports.append(port)
            # One mutation of Bridge.ports for the whole batch.
            for port in new_ports:
                br.addvalue("ports", port)
            return len(new_ports)

        created = self.ovsdb.run(add, f"add {len(wanted)} pod port(s) to {self.name}")
        try:
            ofports = self.ovsdb.check_interfaces(wanted)
        except InterfaceError as exc:
            self._delete_ports(exc.failed, "remove failed pod port(s)")
            raise
        log.info("pod ports added bridge=%s count=%d created=%d", self.name, len(wanted),
                 created)
        return ofports

    def delete_pod_port(self, name: str) -> None:
        """Detach a pod port; a missing port is fine (CNI DEL is idempotent)."""
        self.delete_pod_ports([name])

    def delete_pod_ports(self, names: Iterable[str]) -> int:
        """Detach many pod ports in one transaction; returns how many existed."""
        return self._delete_ports(list(names), "delete pod port(s)")

    # -- reading ---------------------------------------------------------------------------
    def interfaces(self) -> list[Any]:
        """`InterfaceRecord`s of every port on this bridge (for `InterfaceStore.rebuild`)."""
        return self.ovsdb.interfaces(bridge=self.name)

    # -- internals -------------------------------------------------------------------------
    def _bridge_row(self) -> Any:
        br = _find(self.ovsdb.api, "Bridge", self.name)
        if br is None:
            raise OVSDBError(f"bridge {self.name} does not exist")
        return br

    def _check_owner(self, port: Any, owned: set[Any]) -> None:
        if port not in owned:
            owner = next((b.name for b in self.ovsdb.rows("Bridge") if port in b.ports), "?")
            raise OVSDBError(f"port {port.name} belongs to bridge {owner}, not {self.name}")

    def _record(self, name: str) -> Any:
        found = self.ovsdb.interfaces(bridge=self.name, names=[name])
        return found[0] if found else None

    def _ensure_port(self, name: str, columns: Mapping[str, Any],
                     external_ids: Mapping[str, str], ofport_request: int | None) -> int:
        """Create the port or converge its interface's columns; returns the ofport."""
        api = self.ovsdb.api

        def converge(txn: Any) -> bool:
            br = self._bridge_row()
            port = _find(api, "Port", name)
            created = port is None
            if created:
                iface = txn.insert(api.tables["Interface"])
                iface.name = name
                port = txn.insert(api.tables["Port"])
                port.name = name
                port.interfaces = [iface]
                br.addvalue("ports", port)
            else:
                self._check_owner(port, set(br.ports))
                iface = port.interfaces[0]
            for column, value in columns.items():
                # Maps are replaced: options of an old tunnel type must go.
                _converge(iface, column, value)
            _converge(iface, "external_ids", {**dict(getattr(iface, "external_ids", {})),
                                              **external_ids})
            if ofport_request is not None:
                _converge(iface, "ofport_request", ofport_request)
            return created

        created = self.ovsdb.run(converge, f"ensure port {name} on {self.name}")
        ofport = self.ovsdb.check_interfaces([name])[name]
        if ofport_request is not None and ofport != ofport_request:
            log.warning("port did not get its requested ofport port=%s requested=%d got=%d",
                        name, ofport_request, ofport)
        log.info("port ready bridge=%s port=%s created=%s ofport=%d", self.name, name,
                 created, ofport)
        return ofport

    def _delete_ports(self, names: Iterable[str], what: str) -> int:
        api = self.ovsdb.api
        wanted = list(names)

        def delete(txn: Any) -> int:
            br = self._bridge_row()
            owned = set(br.ports)
            count = 0
            for name in wanted:
                port = _find(api, "Port", name)
                if port is None:
                    continue
                self._check_owner(port, owned)
                # Unreferenced Port/Interface rows are garbage-collected by ovsdb-server.
                br.delvalue("ports", port)
                count += 1
            return count

        if not wanted:
            return 0
        count = self.ovsdb.run(delete, f"{what} on {self.name} ({len(wanted)} requested)")
        log.info("ports deleted bridge=%s requested=%d deleted=%d", self.name, len(wanted),
                 count)
        return count


def ensure_bridge(ovsdb: OVSDB, name: str = "br-int", datapath_type: str = "system",
                  protocols: Sequence[str] = ALL_OPENFLOW, fail_mode: str = "secure",
                  mcast_snooping: bool = False,
                  other_config: Mapping[str, str] | None = None) -> OVSBridge:
    """Create or converge a bridge (see `OVSBridge.ensure`) and return its handle."""
    bridge = OVSBridge(ovsdb, name)
    bridge.ensure(datapath_type=datapath_type, protocols=protocols, fail_mode=fail_mode,
                  mcast_snooping=mcast_snooping, other_config=other_config)
    return bridge


# -- the uplink bridge for userspace tunnels ---------------------------------------------


@dataclass
class UplinkAttachment:
    """What `attach_uplink` found and did."""

    bridge: str
    uplink: str
    ofport: int
    mac: str
    mtu: int
    moved_addresses: list[str] = field(default_factory=list)
    moved_routes: list[str] = field(default_factory=list)


def attach_uplink(ovsdb: OVSDB, bridge: str = "br-phy", uplink: str = "eth0",
                  netns: str | None = None, datapath_type: str = "netdev") -> UplinkAttachment:
    """Put the node's uplink into `bridge` and move its IPs and routes onto the bridge.

    Why: with the userspace (netdev) datapath, vswitchd builds tunnel packets itself and
    routes them with its own route/neighbour tables, which it learns from the kernel for
    addresses on OVS bridges it owns; the kernel never sees the encapsulated packet. So
    the node's underlay IP must live on a netdev bridge's LOCAL port (``br-phy``) that also
    holds the uplink as a port: OVS then resolves the next hop and sends the packet out of
    the uplink itself, and the host's own traffic reaches the wire through the same bridge.
    This is OVS's documented userspace-tunnelling set-up (howto/userspace-tunneling).

    vswitchd reads the uplink through an AF_PACKET socket, but the kernel keeps receiving
    the same frames on the uplink too and, the host being weak-host, accepts packets for
    the moved address there as well: every segment arrived twice (*measured*: 8 TCP
    segments instead of 4 per request, DSACKs and RSTs). An nftables ``netdev`` ingress
    chain with policy drop on the uplink removes the kernel's copy; packet sockets see a
    frame before that hook, so OVS still gets it (`isolate_uplink`).

    ``br-phy`` is a plain learning switch (``fail_mode=standalone``), takes the uplink's
    MAC (``other_config:hwaddr``) so peers' ARP caches stay valid, and its MTU. Addresses
    (except IPv6 link-local) and non-kernel routes via the uplink are moved; the uplink
    stays up without addresses. Runs in `netns` (the node's) if given. Idempotent: a
    second call finds nothing left to move.
    """
    with IPRoute(netns=netns) as ipr:
        index = _link_index(ipr, uplink)
        link = ipr.get_links(index)[0]
        mac, mtu = link.get("IFLA_ADDRESS"), link.get("IFLA_MTU")
        addresses = [a for a in ipr.get_addr(index=index) if _movable_address(a)]
        routes = [r for family in (socket.AF_INET, socket.AF_INET6)
                  for r in ipr.get_routes(family=family, oif=index, table=254)
                  if r["proto"] != RTPROT_KERNEL]

    phy = OVSBridge(ovsdb, bridge)
    phy.ensure(datapath_type=datapath_type, fail_mode="standalone",
               other_config={"hwaddr": mac})
    phy._ensure_port(bridge, {"mtu_request": mtu}, {}, None)  # the LOCAL port carries the IP
    ofport = phy.ensure_system_port(uplink, InterfaceType.UPLINK)
    result = UplinkAttachment(bridge, uplink, ofport, mac, mtu)

    with IPRoute(netns=netns) as ipr:
        br_index = _link_index(ipr, bridge)
        ipr.link("set", index=br_index, state="up")
        # Address on the bridge first and routes moved before the uplink loses its last
        # address: the kernel flushes a device's IPv4 routes with its last address.
        for addr in addresses:
            text = f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}"
            # IPv6: the address passed DAD on the uplink already; no new tentative window.
            flags = IFA_F_NODAD if addr["family"] == socket.AF_INET6 else 0
            try:
                ipr.addr("add", index=br_index, address=addr.get("IFA_ADDRESS"),
                         prefixlen=addr["prefixlen"], family=addr["family"], flags=flags)
            except NetlinkError as exc:
                if exc.code != 17:  # EEXIST: already there from an interrupted run
                    raise
            result.moved_addresses.append(text)
        for route in routes:
            result.moved_routes.append(_move_route(ipr, route, br_index))
        for addr in addresses:
            ipr.addr("del", index=index, address=addr.get("IFA_ADDRESS"),
                     prefixlen=addr["prefixlen"], family=addr["family"])
    # Last: until OVS forwards for the host, the kernel's own copy is its only path.
    isolate_uplink(uplink, netns)
    log.info("uplink attached bridge=%s uplink=%s ofport=%d addresses=%s routes=%s", bridge,
             uplink, ofport, result.moved_addresses, result.moved_routes)
    return result


class UplinkError(RuntimeError):
    """The uplink could not be taken over for OVS."""


NFT_TABLE = "antrea_uplink"


def isolate_uplink(uplink: str, netns: str | None = None) -> None:
    """Stop the kernel stack from receiving on `uplink` (nftables netdev ingress drop).

    Idempotent: nft's ``add`` accepts an existing table/chain with the same definition.
    """
    ruleset = (f"add table netdev {NFT_TABLE}\n"
               f"add chain netdev {NFT_TABLE} {_nft_chain(uplink)} "
               f"{{ type filter hook ingress device \"{uplink}\" priority 0; policy drop; }}\n")
    argv = ["nft", "-f", "-"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.run(argv, input=ruleset, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise UplinkError(f"cannot isolate uplink {uplink} from the kernel stack "
                          f"(nft): {proc.stderr.strip()}")


def _nft_chain(uplink: str) -> str:
    return "ingress_" + "".join(c if c.isalnum() else "_" for c in uplink)


def _link_index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise OVSDBError(f"network device {name} not found")
    return found[0]


def _movable_address(addr: Any) -> bool:
    if addr["family"] == socket.AF_INET6:
        return not str(addr.get("IFA_ADDRESS")).lower().startswith("fe80:")
    return addr["family"] == socket.AF_INET


def _move_route(ipr: IPRoute, route: Any, oif: int) -> str:
    """Re-point a route at `oif` (``replace`` keeps dst/metric, swaps the device)."""
    spec: dict[str, Any] = {"family": route["family"], "dst_len": route["dst_len"],
                            "oif": oif, "table": 254, "proto": route["proto"],
                            "scope": route["scope"], "type": route["type"]}
    for attr, key in (("RTA_DST", "dst"), ("RTA_GATEWAY", "gateway"),
                      ("RTA_PRIORITY", "priority"), ("RTA_PREFSRC", "prefsrc")):
        value = route.get(attr)
        if value is not None:
            spec[key] = value
    ipr.route("replace", **spec)
    dst = f"{spec.get('dst', 'default')}/{spec['dst_len']}"
    return f"{dst} via {spec['gateway']}" if "gateway" in spec else dst
