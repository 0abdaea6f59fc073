"""One driver per `tunnelType`: the OVS port type, its options, and its MTU overhead.

Overheads count everything added in front of the pod's IP packet on the underlay: the
outer IP header, the tunnel headers, and the pod's own Ethernet header that the tunnel
carries. The pod MTU is the underlay MTU minus this.
"""

from __future__ import annotations

from typing import Any, ClassVar

from antrea_core.plugins.hookspecs import hookimpl

INNER_ETHERNET = 14
OUTER_IPV4 = 20
OUTER_IPV6 = 40


class TunnelDriver:
    port_type: ClassVar[str]
    default_port: ClassVar[int]
    header_bytes: ClassVar[int]  # tunnel headers between the outer IP and the inner frame
    needs_kernel_datapath: ClassVar[bool] = False

    def overhead(self, ipv6: bool) -> int:
        return (OUTER_IPV6 if ipv6 else OUTER_IPV4) + self.header_bytes + INNER_ETHERNET

    def port_options(self, remote_ip: str | None, dst_port: int, csum: bool) -> dict[str, str]:
        # remote_ip=flow + key=flow: one port serves every remote node; the pipeline sets
        # tun_dst per packet, so adding a node never touches OVSDB.
        options = {"remote_ip": remote_ip or "flow", "key": "flow"}
        if dst_port and dst_port != self.default_port:
            options["dst_port"] = str(dst_port)
        if csum:
            options["csum"] = "true"
        return options

    @hookimpl
    def antrea_validate_config(self, config: Any) -> list[str]:
        datapath = getattr(config, "ovs_datapath_type", "system")
        if self.needs_kernel_datapath and datapath != "system":
            return [
                f"tunnelType: {self.port_type} needs the OVS kernel datapath "
                f"(ovsDatapathType: system); the userspace datapath ({datapath}) has no "
                f"{self.port_type.upper()} support: use geneve, vxlan or gre"
            ]
        return []


class Geneve(TunnelDriver):
    port_type = "geneve"
    default_port = 6081
    header_bytes = 8 + 8  # UDP + Geneve base header


class VXLAN(TunnelDriver):
    port_type = "vxlan"
    default_port = 4789
    header_bytes = 8 + 8  # UDP + VXLAN


class GRE(TunnelDriver):
    port_type = "gre"
    default_port = 0
    # GRE base header + the 4-byte key field: key=flow makes OVS always send a key
    # (*measured*: with 38 bytes of overhead bulk TCP stalled after the first window).
    header_bytes = 4 + 4

    def port_options(self, remote_ip: str | None, dst_port: int, csum: bool) -> dict[str, str]:
        options = super().port_options(remote_ip, 0, csum)
        options.pop("dst_port", None)
        return options


class STT(TunnelDriver):
    port_type = "stt"
    default_port = 7471
    header_bytes = 20 + 18  # TCP-like header + STT frame header
    needs_kernel_datapath = True
