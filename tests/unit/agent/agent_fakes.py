"""Recording fakes for the pieces the pod configurator drives; every call lands in one
shared, ordered log so tests can assert the order of steps and of their rollback."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from antrea_core.agent.bridge.interface_store import InterfaceStore
from antrea_core.agent.ipam.allocator import AllocatedIP, Allocation
from antrea_core.agent.podconfigurator import PodConfigurator, PodNetworkSettings
from antrea_core.agent.podnet.interface import PodInterface as VethPair
from antrea_core.agent.podnet.interface import PodInterfaceSpec
from antrea_core.plugins.context import AgentContext, CNIRequest, PodInterface
from antrea_core.plugins.hookspecs import hookimpl
from antrea_core.plugins.loading import new_plugin_manager


class Injected(RuntimeError):
    """The failure a test asked for."""


@dataclass
class Recorder:
    calls: list[str] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)

    def __call__(self, what: str) -> None:
        self.calls.append(what)
        if what in self.fail:
            raise Injected(f"injected failure in {what}")


class FakeIPAM:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.allocs: dict[tuple[str, str], Allocation] = {}
        self.next = 2

    def allocate(self, container_id: str, ifname: str, owner: str = "") -> Allocation:
        self.rec("ipam.allocate")
        ip = AllocatedIP(ipaddress.ip_interface(f"10.0.0.{self.next}/24"),
                         ipaddress.ip_address("10.0.0.1"))
        self.next += 1
        alloc = Allocation(container_id, ifname, (ip,), owner)
        self.allocs[(container_id, ifname)] = alloc
        return alloc

    def release(self, container_id: str, ifname: str) -> Allocation | None:
        self.rec("ipam.release")
        return self.allocs.pop((container_id, ifname), None)

    def get(self, container_id: str, ifname: str) -> Allocation | None:
        return self.allocs.get((container_id, ifname))

    def allocations(self) -> list[Allocation]:
        return list(self.allocs.values())

    def release_stale(self, known: Any) -> list[Allocation]:
        self.rec("ipam.release_stale")
        stale = [a for k, a in self.allocs.items() if k[0] not in set(known)]
        for a in stale:
            del self.allocs[(a.container_id, a.ifname)]
        return stale


class FakeVeths:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.live: dict[str, PodInterfaceSpec] = {}
        self.teardowns: list[dict[str, str]] = []
        self.check_problem = ""

    def setup(self, spec: PodInterfaceSpec) -> VethPair:
        self.rec("veths.setup")
        self.live[spec.host_ifname] = spec
        return VethPair(spec=spec, host_index=9, host_mac="aa:00:00:00:00:01",
                        mac="0a:00:00:00:00:02")

    def check(self, spec: PodInterfaceSpec) -> None:
        if self.check_problem:
            raise RuntimeError(self.check_problem)

    def teardown(self, host_ifname: str, *, container_id: str = "", netns: str = "",
                 ifname: str = "") -> bool:
        self.rec("veths.teardown")
        self.teardowns.append({"host": host_ifname, "container_id": container_id,
                               "ifname": ifname})
        return self.live.pop(host_ifname, None) is not None


@dataclass
class PortRecord:
    name: str
    ofport: int | None
    external_ids: Mapping[str, str]
    error: str = ""


class FakePorts:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.ports: dict[str, PortRecord] = {}
        self.next_ofport = 10

    def add_pod_port(self, name: str, external_ids: Mapping[str, str]) -> int:
        self.rec("ports.add")
        self.ports[name] = PortRecord(name, self.next_ofport, dict(external_ids))
        self.next_ofport += 1
        return self.ports[name].ofport or 0

    def delete_pod_port(self, name: str) -> None:
        self.rec("ports.delete")
        self.ports.pop(name, None)

    def delete_pod_ports(self, names: Any) -> int:
        self.rec("ports.delete_many")
        return sum(self.ports.pop(n, None) is not None for n in names)

    def interfaces(self) -> list[PortRecord]:
        return list(self.ports.values())


class RecordingStore(InterfaceStore):
    def __init__(self, rec: Recorder) -> None:
        super().__init__()
        self.rec = rec

    def add(self, config: Any) -> None:
        self.rec("store.add")
        super().add(config)

    def delete(self, name: str) -> Any:
        self.rec("store.delete")
        return super().delete(name)


class FakeFlows:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.installed: dict[str, PodInterface] = {}
        self.synced = 0

    def install_pod_flows(self, pod: PodInterface) -> None:
        self.rec("flows.install")
        self.installed[pod.container_id] = pod

    def uninstall_pod_flows(self, pod: PodInterface) -> None:
        self.rec("flows.uninstall")
        self.installed.pop(pod.container_id, None)

    def sync_done(self) -> None:
        self.synced += 1


class RecordingPlugin:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    @hookimpl
    def antrea_cni_add(self, request: CNIRequest, result: dict, context: AgentContext) -> None:
        self.rec("plugin.cni_add")
        result.setdefault("dns", {"nameservers": ["10.96.0.10"]})

    @hookimpl
    def antrea_cni_del(self, request: CNIRequest, context: AgentContext) -> None:
        self.rec("plugin.cni_del")

    @hookimpl
    def antrea_pod_added(self, pod: PodInterface, context: AgentContext) -> None:
        self.rec("plugin.pod_added")

    @hookimpl
    def antrea_pod_removed(self, pod: PodInterface, context: AgentContext) -> None:
        self.rec("plugin.pod_removed")


@dataclass
class Rig:
    rec: Recorder
    ipam: FakeIPAM
    veths: FakeVeths
    ports: FakePorts
    store: RecordingStore
    flows: FakeFlows
    configurator: PodConfigurator


def cni_request(command: str = "ADD", cid: str = "c1", name: str = "web",
                namespace: str = "default", netns: str = "/run/netns/p1") -> CNIRequest:
    args = {"K8S_POD_NAMESPACE": namespace, "K8S_POD_NAME": name} if name else {}
    return CNIRequest(command=command, container_id=cid, netns=netns, ifname="eth0",
                      args=args, config={"cniVersion": "1.0.0", "name": "antrea"})


def make_rig() -> Rig:
    rec = Recorder()
    pm = new_plugin_manager()
    pm.register(RecordingPlugin(rec), name="recorder")
    parts = dict(ipam=FakeIPAM(rec), veths=FakeVeths(rec), ports=FakePorts(rec),
                 store=RecordingStore(rec), flows=FakeFlows(rec))
    configurator = PodConfigurator(
        plugins=pm, context=AgentContext(node_name="n1", config=None),
        settings=PodNetworkSettings(mtu=1450, disable_tx_checksum=True), **parts)
    return Rig(rec=rec, configurator=configurator, **parts)
