"""The agent's in-memory index of this node's OVS interfaces, rebuilt from OVSDB.

OVSDB is the only durable copy: every port the agent creates carries, in its Interface
row's ``external_ids``, what the agent needs to know about it after a restart. The keys
(ours; the MAC key is OVS's Integration Guide ``attached-mac``):

===================  ========================================================
``antrea-type``      ``container`` | ``gateway`` | ``tunnel`` | ``uplink``
``container-id``     the CNI container (sandbox) id           (container only)
``pod-namespace``    the pod's namespace                      (container only)
``pod-name``         the pod's name                           (container only)
``ip-address``       the pod's IPs, comma-separated           (container only)
``attached-mac``     the MAC inside the pod (the host end's is ``mac_in_use``)
===================  ========================================================

Rows without ``antrea-type`` (the bridge's own internal port, ports someone else added)
are not ours and are ignored. `InterfaceStore` indexes entries by interface name,
container id, (namespace, pod name) and ofport; all indexes change together under one
lock because CNI requests and the agent's event thread use the store concurrently.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from antrea_core.plugins.context import PodInterface

log = logging.getLogger("antrea.agent.bridge")

KEY_TYPE = "antrea-type"
KEY_CONTAINER_ID = "container-id"
KEY_POD_NAMESPACE = "pod-namespace"
KEY_POD_NAME = "pod-name"
KEY_IPS = "ip-address"
KEY_MAC = "attached-mac"


class InterfaceType(enum.StrEnum):
    CONTAINER = "container"
    GATEWAY = "gateway"
    TUNNEL = "tunnel"
    UPLINK = "uplink"


class OVSInterfaceRow(Protocol):
    """What rebuilding needs from an OVSDB Interface row (`ovsdb.InterfaceRecord` fits)."""

    name: str
    type: str
    ofport: int | None
    external_ids: Mapping[str, str]
    mac_in_use: str


@dataclass(frozen=True)
class InterfaceConfig:
    """One interface of this node's bridge as the agent knows it.

    `mac` is the pod-side MAC for containers, the interface's own MAC otherwise.
    `ovs_type` is the OVS interface type (the tunnel type for tunnels).
    """

    name: str
    type: InterfaceType
    ofport: int | None = None
    mac: str = ""
    ips: tuple[str, ...] = ()
    container_id: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    ovs_type: str = ""

    @classmethod
    def container(cls, name: str, container_id: str, pod_namespace: str, pod_name: str,
                  ips: Iterable[str], mac: str, ofport: int | None = None) -> InterfaceConfig:
        return cls(name=name, type=InterfaceType.CONTAINER, ofport=ofport, mac=mac,
                   ips=tuple(ips), container_id=container_id, pod_namespace=pod_namespace,
                   pod_name=pod_name)

    def external_ids(self) -> dict[str, str]:
        """The external_ids to write on the Interface row at port creation."""
        ids = {KEY_TYPE: self.type.value}
        if self.type is InterfaceType.CONTAINER:
            ids.update({
                KEY_CONTAINER_ID: self.container_id,
                KEY_POD_NAMESPACE: self.pod_namespace,
                KEY_POD_NAME: self.pod_name,
                KEY_IPS: ",".join(self.ips),
            })
            if self.mac:
                ids[KEY_MAC] = self.mac
        return ids

    @classmethod
    def from_ovsdb(cls, row: OVSInterfaceRow) -> InterfaceConfig | None:
        """Rebuild from a row written by this agent; None if the row is not ours."""
        ids = row.external_ids
        try:
            kind = InterfaceType(ids.get(KEY_TYPE, ""))
        except ValueError:
            return None
        ofport = row.ofport if row.ofport and row.ofport > 0 else None
        if kind is InterfaceType.CONTAINER:
            ips = tuple(ip for ip in ids.get(KEY_IPS, "").split(",") if ip)
            return cls.container(row.name, ids.get(KEY_CONTAINER_ID, ""),
                                 ids.get(KEY_POD_NAMESPACE, ""), ids.get(KEY_POD_NAME, ""),
                                 ips, ids.get(KEY_MAC, ""), ofport)
        # A tunnel port's mac_in_use is an arbitrary placeholder: no frame carries it.
        # A configured MAC (``mac`` column) wins: mac_in_use is refreshed lazily.
        mac = "" if kind is InterfaceType.TUNNEL else (
            getattr(row, "mac", "") or row.mac_in_use or "")
        return cls(name=row.name, type=kind, ofport=ofport, mac=mac, ovs_type=row.type)

    def with_ofport(self, ofport: int | None) -> InterfaceConfig:
        return replace(self, ofport=ofport)

    def to_pod_interface(self) -> PodInterface:
        """The plugin-facing view; only for container interfaces that have an ofport."""
        if self.type is not InterfaceType.CONTAINER or self.ofport is None:
            raise ValueError(f"interface {self.name} ({self.type}, ofport={self.ofport}) "
                             "is not an attached pod interface")
        return PodInterface(namespace=self.pod_namespace, name=self.pod_name,
                            container_id=self.container_id, interface_name=self.name,
                            ips=self.ips, mac=self.mac, ofport=self.ofport)


class InterfaceStore:
    """Interfaces of this node's bridge, indexed by name, container id, pod and ofport.

    A pod may briefly own two containers' interfaces (its sandbox was recreated and the
    old one's CNI DEL has not arrived yet), so the pod index holds a list, newest last.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_name: dict[str, InterfaceConfig] = {}
        self._by_container: dict[str, InterfaceConfig] = {}
        self._by_pod: dict[tuple[str, str], list[InterfaceConfig]] = {}
        self._by_ofport: dict[int, InterfaceConfig] = {}

    # -- changes ----------------------------------------------------------------------
    def add(self, config: InterfaceConfig) -> None:
        """Add or replace (same name, or same container id) an interface."""
        with self._lock:
            self._remove(config.name)
            if config.container_id and config.container_id in self._by_container:
                self._remove(self._by_container[config.container_id].name)
            if config.ofport is not None and config.ofport in self._by_ofport:
                # vswitchd reuses freed ofports; whoever held it is gone from OVS.
                stale = self._by_ofport[config.ofport]
                log.warning("ofport reused, dropping stale entry ofport=%d old=%s new=%s",
                            config.ofport, stale.name, config.name)
                self._remove(stale.name)
            self._by_name[config.name] = config
            if config.type is InterfaceType.CONTAINER:
                if config.container_id:
                    self._by_container[config.container_id] = config
                key = (config.pod_namespace, config.pod_name)
                self._by_pod.setdefault(key, []).append(config)
            if config.ofport is not None:
                self._by_ofport[config.ofport] = config

    def delete(self, name: str) -> InterfaceConfig | None:
        """Remove an interface by name; returns what was removed."""
        with self._lock:
            return self._remove(name)

    def clear(self) -> None:
        with self._lock:
            self._by_name.clear()
            self._by_container.clear()
            self._by_pod.clear()
            self._by_ofport.clear()

    def rebuild(self, rows: Iterable[OVSInterfaceRow]) -> int:
        """Replace the content with what OVSDB rows say (agent start-up); returns the count.

        Pod interfaces vswitchd failed to open (ofport unset, e.g. the veth vanished while
        the agent was down) are kept so CNI DEL can still find and remove their ports.
        """
        configs = []
        for row in rows:
            config = InterfaceConfig.from_ovsdb(row)
            if config is None:
                log.debug("skipping OVS interface not created by the agent name=%s", row.name)
                continue
            if config.ofport is None:
                log.warning("interface without ofport name=%s type=%s", config.name,
                            config.type)
            configs.append(config)
        with self._lock:
            self.clear()
            for config in configs:
                self.add(config)
            count = len(self._by_name)
        log.info("interface store rebuilt interfaces=%d containers=%d", count,
                 len(self._by_container))
        return count

    # -- queries ----------------------------------------------------------------------
    def get(self, name: str) -> InterfaceConfig | None:
        with self._lock:
            return self._by_name.get(name)

    def get_container(self, container_id: str) -> InterfaceConfig | None:
        with self._lock:
            return self._by_container.get(container_id)

    def get_pod(self, namespace: str, name: str) -> list[InterfaceConfig]:
        with self._lock:
            return list(self._by_pod.get((namespace, name), ()))

    def get_by_ofport(self, ofport: int) -> InterfaceConfig | None:
        with self._lock:
            return self._by_ofport.get(ofport)

    def of_type(self, kind: InterfaceType) -> list[InterfaceConfig]:
        with self._lock:
            return [c for c in self._by_name.values() if c.type is kind]

    def gateway(self) -> InterfaceConfig | None:
        return next(iter(self.of_type(InterfaceType.GATEWAY)), None)

    def tunnel(self) -> InterfaceConfig | None:
        return next(iter(self.of_type(InterfaceType.TUNNEL)), None)

    def uplink(self) -> InterfaceConfig | None:
        return next(iter(self.of_type(InterfaceType.UPLINK)), None)

    def containers(self) -> list[InterfaceConfig]:
        return self.of_type(InterfaceType.CONTAINER)

    def pod_interfaces(self) -> list[PodInterface]:
        """Every attached pod interface, for `antrea_pod_added` after a restart."""
        return [c.to_pod_interface() for c in self.containers() if c.ofport is not None]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._by_name

    def __iter__(self) -> Iterator[InterfaceConfig]:
        with self._lock:
            return iter(list(self._by_name.values()))

    # -- internals --------------------------------------------------------------------
    def _remove(self, name: str) -> InterfaceConfig | None:
        config = self._by_name.pop(name, None)
        if config is None:
            return None
        if self._by_container.get(config.container_id) is config:
            del self._by_container[config.container_id]
        key = (config.pod_namespace, config.pod_name)
        siblings = self._by_pod.get(key)
        if siblings is not None:
            siblings[:] = [c for c in siblings if c is not config]
            if not siblings:
                del self._by_pod[key]
        if config.ofport is not None and self._by_ofport.get(config.ofport) is config:
            del self._by_ofport[config.ofport]
        return config
