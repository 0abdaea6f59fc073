"""The agent's CNI handler: ADD, CHECK and DEL of pod attachments on this node.

ADD runs these steps, each undone in reverse order if a later one fails, so a failed ADD
leaves no IP, veth, port, store entry, flow or plugin state behind:

  IPAM allocate → pod interface (veth, addresses, routes, MTU, TX checksum) → OVS port
  (external_ids) → interface store → plugins' antrea_pod_attaching (NetworkPolicy: the
  pod is isolated before anything can reach it) → pod flows → plugins' antrea_cni_add →
  plugins' antrea_pod_added → the CNI 1.0 result

The CNI error names the step that failed (and any undo that failed too). DEL runs the
reverse and succeeds when there is nothing (left) to release: kubelet repeats DELs, and
sends them for containers this agent never saw.

Concurrency: the CNI server calls a handler from several threads, never twice at once
for the same attachment. IPAM, the interface store and OVSDB are thread-safe; flow
installer and plugin hooks are not required to be, so those calls are serialised here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from antrea_core.agent.bridge.interface_store import (
    KEY_CONTAINER_ID,
    InterfaceConfig,
    InterfaceStore,
)
from antrea_core.agent.cniserver.errors import (
    CHECK_FAILURE,
    INTERFACE_FAILURE,
    INTERNAL_ERROR,
    INVALID_ENVIRONMENT,
    IPAM_FAILURE,
    UNKNOWN_CONTAINER,
    CNIError,
)
from antrea_core.agent.ipam.allocator import AllocatedIP, Allocation
from antrea_core.agent.podflows import PodFlowInstaller
from antrea_core.agent.podnet.interface import (
    PodInterface as VethPair,
)
from antrea_core.agent.podnet.interface import (
    PodInterfaceSpec,
    host_interface_name,
)
from antrea_core.plugins.context import AgentContext, CNIRequest

log = logging.getLogger("antrea.agent.cni")

ARG_NAMESPACE = "K8S_POD_NAMESPACE"
ARG_NAME = "K8S_POD_NAME"


# -- what the configurator drives (the real classes fit; tests pass fakes) ---------------
class PodIPAM(Protocol):
    def allocate(self, container_id: str, ifname: str, owner: str = "") -> Allocation: ...
    def release(self, container_id: str, ifname: str) -> Allocation | None: ...
    def get(self, container_id: str, ifname: str) -> Allocation | None: ...


class PodVeths(Protocol):
    def setup(self, spec: PodInterfaceSpec) -> VethPair: ...
    def check(self, spec: PodInterfaceSpec) -> None: ...
    def teardown(self, host_ifname: str, *, container_id: str = "", netns: str = "",
                 ifname: str = "") -> bool: ...


class PodPorts(Protocol):
    """The OVS bridge (`bridge.lifecycle.OVSBridge`)."""

    def add_pod_port(self, name: str, external_ids: Mapping[str, str]) -> int: ...
    def delete_pod_port(self, name: str) -> None: ...
    def interfaces(self) -> list[Any]: ...


class StepFailed(Exception):
    """One named step of a CNI command failed."""

    def __init__(self, step: str, code: int, cause: BaseException) -> None:
        super().__init__(f"{step}: {cause}")
        self.step = step
        self.code = code
        self.cause = cause


def call_hook(pm: Any, hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook_name`` in pluggy's order, one at a time, so a
    failure names the plugin that raised (pluggy's own call would not)."""
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):  # pluggy calls the last registered first
        if impl.hookwrapper or impl.wrapper:
            continue  # the contract defines no wrappers
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception as exc:
            raise StepFailed(f"plugin {impl.plugin_name} ({hook_name})", INTERNAL_ERROR,
                             exc) from exc


@dataclass
class _Undo:
    """Undo actions of the steps done so far; run newest first."""

    steps: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def push(self, step: str, action: Callable[[], object]) -> None:
        self.steps.append((step, action))

    def run(self) -> list[str]:
        problems = []
        for step, action in reversed(self.steps):
            try:
                action()
            except Exception as exc:
                log.error("rollback of %s failed: %s", step, exc)
                problems.append(f"undo {step}: {exc}")
        self.steps.clear()
        return problems


@dataclass(frozen=True)
class PodNetworkSettings:
    mtu: int
    disable_tx_checksum: bool  # the userspace datapath needs it (DESIGN §5)


class PodConfigurator:
    """`CNIHandler` (cniserver.server) for this node's pods."""

    def __init__(self, *, ipam: PodIPAM, veths: PodVeths, ports: PodPorts,
                 store: InterfaceStore, flows: PodFlowInstaller, plugins: Any,
                 context: AgentContext, settings: PodNetworkSettings) -> None:
        self.ipam = ipam
        self.veths = veths
        self.ports = ports
        self.store = store
        self.flows = flows
        self.pm = plugins  # a pluggy PluginManager (AgentPlugins.manager)
        self.context = context
        self.settings = settings
        self._datapath_lock = threading.Lock()  # flows + plugin hooks, one call at a time

    # -- ADD ----------------------------------------------------------------------------
    def add(self, request: CNIRequest) -> dict[str, Any]:
        namespace, name = _pod_of(request, required=True)
        previous = self.store.get_container(request.container_id)
        if previous is not None:
            # kubelet retried an ADD whose answer it lost: start from a clean slate.
            log.info("ADD for an attached container, releasing first container=%s",
                     request.container_id)
            self.delete(request)
        undo = _Undo()
        try:
            result = self._add(request, namespace, name, undo)
        except StepFailed as exc:
            problems = undo.run()
            details = str(exc.cause) + "".join(f"; {p}" for p in problems)
            log.warning("ADD failed container=%s pod=%s/%s step=%s err=%s",
                        request.container_id, namespace, name, exc.step, exc.cause)
            raise CNIError(exc.code, f"CNI ADD failed at step {exc.step}", details) from None
        except BaseException:
            undo.run()
            raise
        return result

    def _add(self, request: CNIRequest, namespace: str, name: str, undo: _Undo
             ) -> dict[str, Any]:
        cid, ifname = request.container_id, request.ifname
        host_ifname = host_interface_name(namespace, name)
        self._retire_other_sandbox(host_ifname, cid)

        with _step("IPAM", IPAM_FAILURE):
            allocation = self.ipam.allocate(cid, ifname, f"{namespace}/{name}")
        undo.push("IPAM", lambda: self.ipam.release(cid, ifname))

        spec = self._spec(request, host_ifname, allocation.ips)
        with _step("pod interface", INTERFACE_FAILURE):
            veth = self.veths.setup(spec)
        undo.push("pod interface", lambda: self.veths.teardown(
            host_ifname, container_id=cid, netns=request.netns, ifname=ifname))

        config = InterfaceConfig.container(
            host_ifname, cid, namespace, name, [str(ip.address.ip) for ip in allocation.ips],
            veth.mac)
        with _step("OVS port", INTERFACE_FAILURE):
            ofport = self.ports.add_pod_port(host_ifname, config.external_ids())
        undo.push("OVS port", lambda: self.ports.delete_pod_port(host_ifname))

        config = config.with_ofport(ofport)
        with _step("interface store", INTERNAL_ERROR):
            self.store.add(config)
        undo.push("interface store", lambda: self.store.delete(host_ifname))

        pod = config.to_pod_interface()
        result = veth.cni_result()
        with self._datapath_lock:
            # Undos pushed before each hook: plugins before the failing one did their part
            # already. One antrea_pod_removed undoes both pod hooks; it runs after the
            # pod's flows are gone, as on DEL.
            undo.push("antrea_pod_attaching", lambda: self._locked(
                call_hook, self.pm, "antrea_pod_removed", pod=pod, context=self.context))
            # Policy first: the pod must be isolated before its flows make it reachable.
            call_hook(self.pm, "antrea_pod_attaching", pod=pod, context=self.context)
            with _step("pod flows", INTERNAL_ERROR):
                self.flows.install_pod_flows(pod)
            undo.push("pod flows", lambda: self._locked(self.flows.uninstall_pod_flows, pod))
            undo.push("antrea_cni_add", lambda: self._locked(
                call_hook, self.pm, "antrea_cni_del", request=request, context=self.context))
            call_hook(self.pm, "antrea_cni_add", request=request, result=result,
                      context=self.context)
            call_hook(self.pm, "antrea_pod_added", pod=pod, context=self.context)
        log.info("pod attached pod=%s/%s container=%s port=%s ofport=%d ips=%s mac=%s",
                 namespace, name, cid, host_ifname, ofport, ",".join(pod.ips), pod.mac)
        return result

    def _retire_other_sandbox(self, host_ifname: str, container_id: str) -> None:
        """The pod's port may still belong to its previous sandbox (recreated before that
        one's DEL came): its flows must go now, the new sandbox takes the port over. Its
        IP stays allocated until its own DEL."""
        old = self.store.get(host_ifname)
        if old is None or old.container_id == container_id:
            return
        log.info("pod sandbox replaced port=%s old=%s new=%s", host_ifname, old.container_id,
                 container_id)
        if old.ofport is not None:
            pod = old.to_pod_interface()
            with self._datapath_lock, _step("pod flows of the previous sandbox",
                                            INTERNAL_ERROR):
                self.flows.uninstall_pod_flows(pod)  # unreachable before its policy goes
                call_hook(self.pm, "antrea_pod_removed", pod=pod, context=self.context)
        # The port goes too: the new sandbox's veth reuses the name, and a userspace
        # vswitchd keeps a port bound to the deleted device (the new pod would be cut off).
        with _step("OVS port of the previous sandbox", INTERFACE_FAILURE):
            self.ports.delete_pod_port(host_ifname)
        self.store.delete(host_ifname)

    # -- CHECK --------------------------------------------------------------------------
    def check(self, request: CNIRequest) -> None:
        cid = request.container_id
        allocation = self.ipam.get(cid, request.ifname)
        known = self.store.get_container(cid)
        if allocation is None and known is None:
            raise CNIError(UNKNOWN_CONTAINER, f"unknown container {cid}")
        problems: list[str] = []
        if allocation is None:
            problems.append("no IP allocated")
        if known is None:
            problems.append("no OVS port recorded")
        else:
            problems.extend(self._check_port(known, cid))
            if allocation is not None:
                want = tuple(str(ip.address.ip) for ip in allocation.ips)
                if known.ips != want:
                    problems.append(f"port records IPs {','.join(known.ips)}, IPAM has "
                                    f"{','.join(want)}")
                spec = self._spec(request, known.name, allocation.ips, mac=known.mac)
                try:
                    self.veths.check(spec)
                except Exception as exc:
                    problems.append(str(exc))
        if problems:
            raise CNIError(CHECK_FAILURE, f"CNI CHECK failed for container {cid}",
                           "; ".join(problems))

    def _check_port(self, known: InterfaceConfig, container_id: str) -> list[str]:
        record = next((r for r in self.ports.interfaces() if r.name == known.name), None)
        if record is None:
            return [f"OVS port {known.name} is missing"]
        problems = []
        if record.ofport is None:
            problems.append(f"OVS port {known.name} has no ofport: {record.error or '?'}")
        elif record.ofport != known.ofport:
            problems.append(f"OVS port {known.name} has ofport {record.ofport}, recorded "
                            f"{known.ofport}")
        owner = record.external_ids.get(KEY_CONTAINER_ID)
        if owner != container_id:
            problems.append(f"OVS port {known.name} belongs to container {owner}")
        return problems

    # -- DEL ----------------------------------------------------------------------------
    def delete(self, request: CNIRequest) -> None:
        try:
            self._delete(request)
        except StepFailed as exc:
            log.warning("DEL failed container=%s step=%s err=%s", request.container_id,
                        exc.step, exc.cause)
            raise CNIError(exc.code, f"CNI DEL failed at step {exc.step}",
                           str(exc.cause)) from None

    def _delete(self, request: CNIRequest) -> None:
        cid, ifname = request.container_id, request.ifname
        known = self.store.get_container(cid)
        namespace, name = _pod_of(request, required=False)
        if known is not None:
            host_ifname: str | None = known.name
        elif namespace and name:
            host_ifname = host_interface_name(namespace, name)
        else:
            host_ifname = None

        with self._datapath_lock:
            call_hook(self.pm, "antrea_cni_del", request=request, context=self.context)
            if known is not None and known.ofport is not None:
                pod = known.to_pod_interface()
                # Flows first: the pod stops being reachable before its policy goes.
                with _step("pod flows", INTERNAL_ERROR):
                    self.flows.uninstall_pod_flows(pod)
                call_hook(self.pm, "antrea_pod_removed", pod=pod, context=self.context)
        if known is not None:
            # Only a port the store ties to this container: the same name may already
            # serve the pod's next sandbox.
            with _step("OVS port", INTERFACE_FAILURE):
                self.ports.delete_pod_port(known.name)
            self.store.delete(known.name)
        if host_ifname is not None:
            with _step("pod interface", INTERFACE_FAILURE):
                # Checks the veth's owner tag, so a newer sandbox's veth is left alone.
                self.veths.teardown(host_ifname, container_id=cid, netns=request.netns,
                                    ifname=ifname)
        with _step("IPAM", IPAM_FAILURE):
            released = self.ipam.release(cid, ifname)
        log.info("pod detached container=%s port=%s released=%s", cid, host_ifname or "-",
                 ",".join(str(ip.address) for ip in released.ips) if released else "-")

    # -- helpers ------------------------------------------------------------------------
    def _spec(self, request: CNIRequest, host_ifname: str, ips: Sequence[AllocatedIP],
              mac: str | None = None) -> PodInterfaceSpec:
        return PodInterfaceSpec(container_id=request.container_id, netns=request.netns,
                                ifname=request.ifname, host_ifname=host_ifname, ips=ips,
                                mtu=self.settings.mtu, mac=mac or None,
                                disable_tx_checksum=self.settings.disable_tx_checksum)

    def _locked(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> object:
        with self._datapath_lock:
            return fn(*args, **kwargs)


@contextmanager
def _step(step: str, code: int) -> Iterator[None]:
    """Turn any exception inside the block into StepFailed(step, code)."""
    try:
        yield
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(step, code, exc) from exc


def _pod_of(request: CNIRequest, *, required: bool) -> tuple[str, str]:
    namespace = request.args.get(ARG_NAMESPACE, "")
    name = request.args.get(ARG_NAME, "")
    if required and not (namespace and name):
        raise CNIError(INVALID_ENVIRONMENT, "CNI_ARGS lacks the pod's identity",
                       f"{ARG_NAMESPACE} and {ARG_NAME} are required (is the runtime "
                       "Kubernetes?)")
    return namespace, name

