"""Bring a lab up and down: network, API server, controller-manager, and per node OVS +
kubelet. Each step records what it created in lab.json before the next one starts, so
`down` can undo a half-finished `up` or a crashed lab."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from antrea_lab import processes
from antrea_lab.credentials import controller_kubeconfig, ensure_credentials
from antrea_lab.labdir import (
    CLUSTER_CIDR,
    NODE_CIDR_MASK,
    NODE_PORT_RANGE,
    SERVICE_CIDR,
    LabDir,
    LabError,
    LabState,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger("antrea.lab.cluster")

Progress = Callable[[str], None]
DEFAULT_API_PORT = 6443


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Step:
    progress: Progress

    def __call__(self, what: str, fn: Callable[[], object]) -> object:
        start = time.monotonic()
        self.progress(f"  {what} …")
        result = fn()
        self.progress(f"  {what}: done in {time.monotonic() - start:.1f}s")
        return result


def running(lab: LabDir) -> LabState | None:
    """The lab's state if its API server is alive."""
    state = lab.load()
    if state is None:
        return None
    pid = state.pids.get("apiserver")
    if pid and processes.is_ours(pid, str(lab.path)):
        return state
    return None


def _start(lab: LabDir, state: LabState, component: str, argv: list[str],
           netns: str | None = None, env: dict[str, str] | None = None) -> None:
    pid = processes.spawn(argv, lab.log(component), lab.pids / f"{component}.pid",
                          netns=netns, env=env)
    state.pids[component] = pid
    state.commands[component] = {"argv": argv, "netns": netns, **({"env": env} if env else {})}
    lab.save(state)


def restart(lab: LabDir, component: str, kill: bool = False) -> int:
    """Stop a component (SIGTERM, or SIGKILL if `kill`) and start it again as `up` did;
    returns the new PID. How operators restart an agent; tests use it too."""
    state = lab.load()
    if state is None or component not in state.commands:
        known = sorted(state.commands) if state else []
        raise LabError(f"no restartable component {component!r} (known: {', '.join(known)})")
    pid = state.pids.get(component, 0)
    if kill and processes.is_ours(pid, str(lab.path)):
        os.kill(pid, signal.SIGKILL)
    processes.stop(pid, str(lab.path))
    command = state.commands[component]
    _start(lab, state, component, command["argv"], netns=command["netns"],
           env=command.get("env"))
    if component == CONTROLLER:
        wait_controller_serving(lab)
    return state.pids[component]


def _wait_ready(lab: LabDir, port: int, timeout: float = 30.0) -> None:
    ctx = ssl.create_default_context(cafile=str(lab.pki / "ca.crt"))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        pid = lab.load().pids.get("apiserver", 0)  # type: ignore[union-attr]
        if not processes.is_ours(pid, str(lab.path)):
            raise LabError(f"the API server exited; see {lab.log('apiserver')}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx,
                                        timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise LabError(f"API server not ready after {timeout:.0f}s ({last}); "
                   f"see {lab.log('apiserver')}")


def agent_config(lab: LabDir, node: str, overrides: dict | None = None) -> dict:
    """antrea-agent.conf of a lab node: the userspace datapath and per-node paths, with
    the lab config's antreaAgent settings on top."""
    conf = {
        "ovsDatapathType": "netdev",
        "ovsRunDir": str(lab.ovs_dirs(node) / "run"),
        "cniSocket": str(lab.node(node) / "run" / "cni.sock"),
    }
    conf.update(overrides or {})
    return conf


def up(lab: LabDir, nodes: int, cni: str = "bridge", api_port: int | None = None,
       progress: Progress = print, agent_overrides: dict | None = None,
       subnets: int = 1) -> LabState:
    """Bring the lab up; ``subnets`` > 1 spreads the nodes over routed underlay subnets
    (see node.topology), which only antrea-agent can network (its tunnels or hybrid
    mode): the bridge CNI's host routes need every node on one subnet."""
    from antrea_lab.node import ovs, topology  # imported late: they need root + pyroute2

    if subnets > 1 and cni != "antrea":
        raise LabError("underlaySubnets > 1 needs cni antrea (the bridge CNI routes pods "
                       "only between nodes on one subnet)")
    try:
        topology.plan(lab.name, nodes, subnets)
    except ValueError as exc:
        raise LabError(f"underlaySubnets: {exc}") from None
    if running(lab):
        raise LabError(f"lab {lab.name} is already up (antrea-lab --name {lab.name} down "
                       "first)")
    if lab.load() is not None:
        progress(f"cleaning up what is left of an earlier lab {lab.name}")
        down(lab, progress=lambda _m: None)
    port = api_port or (DEFAULT_API_PORT if _port_free(DEFAULT_API_PORT) else _free_port())
    names = [f"node{i}" for i in range(1, nodes + 1)]
    state = LabState(name=lab.name, api_port=port, nodes=names, cni=cni)
    lab.save(state)
    step = Step(progress)
    progress(f"bringing up lab {lab.name}: {nodes} node(s), API on https://127.0.0.1:{port}")
    step("credentials", lambda: ensure_credentials(lab, names, port))

    def network() -> None:
        # Recorded before creation: a failure half-way still leaves `down` the names.
        state.netns = topology.plan(lab.name, names, subnets).all_netns()
        lab.save(state)
        state.topology = topology.create(lab.name, names, subnets).to_dict()
        lab.save(state)
    step("network namespaces (underlay, nodes, external)", network)

    py = sys.executable
    step("API server", lambda: (
        _start(lab, state, "apiserver", [
            py, "-m", "antrea_lab.apiserver", "--data-dir", str(lab.apiserver_data),
            "--pki-dir", str(lab.pki), "--token-file", str(lab.tokens),
            "--listen", f"127.0.0.1:{port}",
            "--listen-netns", f"{lab.netns('underlay')}={topology.GATEWAY_IP}:{port}",
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--service-node-port-range", NODE_PORT_RANGE]),
        _wait_ready(lab, port)))
    step("controller-manager", lambda: _start(lab, state, "controllers", [
        py, "-m", "antrea_lab.controllers",
        "--kubeconfig", str(lab.path / "controller-manager.kubeconfig"),
        "--cluster-cidr", CLUSTER_CIDR, "--node-cidr-mask-size", str(NODE_CIDR_MASK)]))
    # Harmless with the bridge CNI; antrea-controller and the agents watch them.
    step("Antrea CRDs", lambda: install_crds(lab))
    agent_env: dict[str, str] = {}
    if cni == "antrea" and (agent_overrides or {}).get("trafficEncryptionMode") == "ipsec":
        agent_env[IPSEC_PSK_ENV] = str(step("IPsec pre-shared key (Secret antrea-ipsec)",
                                            lambda: ensure_ipsec_psk(lab)))
    if cni == "antrea":
        # Not waited for here: it starts while the nodes do (agents wait for it).
        step("antrea-controller", lambda: start_controller(lab, state, wait=False))
    for node in names:
        def start_node(node: str = node) -> None:
            pids = ovs.NodeOVS(lab.netns(node), lab.ovs_dirs(node), lab.logs,
                               log_prefix=node).start()
            state.pids[f"{node}-ovsdb-server"] = pids.ovsdb_server
            state.pids[f"{node}-ovs-vswitchd"] = pids.ovs_vswitchd
            lab.save(state)
            lab.cni_conf_dir(node).mkdir(parents=True, exist_ok=True)
            lab.cni_bin_dir(node).mkdir(parents=True, exist_ok=True)
            argv = [py, "-m", "antrea_lab.node.kubelet", "--node-name", node,
                    "--kubeconfig", str(lab.node_kubeconfig(node)),
                    "--node-ip", topology.Topology.from_dict(state.topology).node(node).ip,
                    "--lab-name", lab.name,
                    "--cni-conf-dir", str(lab.cni_conf_dir(node)),
                    "--cni-bin-dir", f"{lab.cni_bin_dir(node)}:/usr/lib/cni",
                    "--pod-dir", str(lab.pod_dir(node))]
            if cni == "bridge":
                argv.append("--install-bridge-cni")
            else:
                conf_file = lab.node(node) / "antrea-agent.conf"
                conf_file.write_text(yaml.safe_dump(agent_config(lab, node, agent_overrides)))
                _start(lab, state, f"{node}-antrea-agent", [
                    str(Path(py).parent / "antrea-agent"), "--config", str(conf_file),
                    "--kubeconfig", str(lab.node_kubeconfig(node)), "--node-name", node,
                    "--cni-conf-dir", str(lab.cni_conf_dir(node)),
                    "--cni-bin-dir", str(lab.cni_bin_dir(node)),
                    "--state-dir", str(lab.node(node) / "agent")], netns=lab.netns(node),
                    env=agent_env or None)
            _start(lab, state, f"{node}-kubelet", argv, netns=lab.netns(node))
        step(f"{node}: Open vSwitch + kubelet", start_node)
    step("nodes Ready", lambda: wait_nodes_ready(lab, names))
    if cni == "antrea":
        step("antrea-controller serving", lambda: wait_controller_serving(lab))
    if cni == "bridge":
        step("pod routes between nodes (bridge mode)", lambda: route_pod_cidrs(lab))
    return state


CONTROLLER = "controller"  # the component name: `antrea-lab restart/logs controller`
CONTROLLER_API_PORT = 10349  # antrea-controller's apiPort default
ANTREA_SERVICE_LABELS = {"app": "antrea", "component": "antrea-controller"}
# Set on the Endpoints/EndpointSlice we write, so no controller of the lab claims them.
LAB_MANAGER = "antrea-lab"


IPSEC_PSK_ENV = "ANTREA_IPSEC_PSK"


def ensure_ipsec_psk(lab: LabDir) -> str:
    """The cluster's IPsec pre-shared key: Secret kube-system/antrea-ipsec (key psk),
    created with a random key unless it exists, as the IPsec manifest's Secret is."""
    from kubernetes import client

    core = client.CoreV1Api(kube_client(lab))
    try:
        secret = core.read_namespaced_secret("antrea-ipsec", "kube-system")
        return base64.b64decode(secret.data["psk"]).decode()
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    psk = secrets.token_urlsafe(32)
    core.create_namespaced_secret("kube-system", {
        "metadata": {"name": "antrea-ipsec"}, "type": "Opaque", "stringData": {"psk": psk}})
    return psk


def install_crds(lab: LabDir) -> list[str]:
    """Create Antrea's CRDs (antrea_core/apis/crds) through the API and wait until they
    are served; idempotent."""
    from antrea_core.apis import crds
    from antrea_core.k8s.clientconfig import api_client
    from antrea_core.k8s.rawclient import RawClient

    api = api_client(str(lab.kubeconfig))
    try:
        return crds.install(RawClient(api), timeout=60.0)
    finally:
        api.close()


def controller_dir(lab: LabDir) -> Path:
    return lab.path / "antrea-controller"


def start_controller(lab: LabDir, state: LabState, wait: bool = True) -> None:
    """Run antrea-controller in the underlay netns (agents in node netns reach it at the
    control-plane IP), point Service kube-system/antrea at it and (if `wait`) wait until
    it serves."""
    from antrea_lab.node import topology

    conf = controller_dir(lab) / "antrea-controller.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(yaml.safe_dump({"apiPort": CONTROLLER_API_PORT}))
    ensure_antrea_service(lab, topology.CONTROL_PLANE_IP, CONTROLLER_API_PORT)
    _start(lab, state, CONTROLLER, [
        str(Path(sys.executable).parent / "antrea-controller"), "--config", str(conf),
        "--kubeconfig", str(controller_kubeconfig(lab)),
        "--bind-address", topology.CONTROL_PLANE_IP,
        "--cert-dir", str(controller_dir(lab) / "certs")], netns=lab.netns("underlay"))
    if wait:
        wait_controller_serving(lab)


def ensure_antrea_service(lab: LabDir, ip: str, port: int) -> None:
    """Service kube-system/antrea without a selector, with Endpoints and an EndpointSlice
    naming the controller's address (what a selector would give in a real cluster)."""
    from kubernetes import client

    api = kube_client(lab)
    core, disco = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    ns = "kube-system"
    labels = {**ANTREA_SERVICE_LABELS, "endpointslice.kubernetes.io/managed-by": LAB_MANAGER}
    service = {"metadata": {"name": "antrea", "labels": ANTREA_SERVICE_LABELS},
               "spec": {"ports": [{"name": "api", "port": 443, "protocol": "TCP",
                                   "targetPort": port}]}}
    # skip-mirror: the EndpointSlice is written here too, none should be derived.
    ep_labels = {**ANTREA_SERVICE_LABELS, "endpointslice.kubernetes.io/skip-mirror": "true"}
    endpoints = {"metadata": {"name": "antrea", "labels": ep_labels},
                 "subsets": [{"addresses": [{"ip": ip}],
                              "ports": [{"name": "api", "port": port, "protocol": "TCP"}]}]}
    eps = {"metadata": {"name": "antrea-lab",
                        "labels": {**labels, "kubernetes.io/service-name": "antrea"}},
           "addressType": "IPv6" if ":" in ip else "IPv4",
           "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
           "ports": [{"name": "api", "port": port, "protocol": "TCP"}]}
    for create, replace, body in (
            (core.create_namespaced_service, None, service),
            (core.create_namespaced_endpoints, core.replace_namespaced_endpoints, endpoints),
            (disco.create_namespaced_endpoint_slice, disco.replace_namespaced_endpoint_slice,
             eps)):
        try:
            create(ns, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            if replace is not None:
                replace(body["metadata"]["name"], ns, body)


def wait_controller_serving(lab: LabDir, timeout: float = 60.0) -> None:
    """Until antrea-controller completes a TLS handshake at its Service endpoint (from
    the underlay netns, with the CA it published), or fail pointing at its log."""
    from antrea_lab.node import netns, topology

    ca = controller_dir(lab) / "certs" / "ca.crt"
    deadline = time.monotonic() + timeout
    last = "no CA yet"

    def handshake() -> None:
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection((topology.CONTROL_PLANE_IP, CONTROLLER_API_PORT),
                                      timeout=2) as sock, \
                ctx.wrap_socket(sock, server_hostname="antrea.kube-system.svc"):
            pass

    while time.monotonic() < deadline:
        pid = lab.load().pids.get(CONTROLLER, 0)  # type: ignore[union-attr]
        if not processes.is_ours(pid, str(lab.path)):
            raise LabError(f"antrea-controller exited; see {lab.log(CONTROLLER)}")
        if ca.exists():
            try:
                netns.run_in(lab.netns("underlay"), handshake)
                return
            except OSError as exc:
                last = str(exc)
        time.sleep(0.2)
    raise LabError(f"antrea-controller not serving after {timeout:.0f}s ({last}); "
                   f"see {lab.log(CONTROLLER)}")


def route_pod_cidrs(lab: LabDir) -> None:
    """Bridge mode only: route every node's podCIDRs via its underlay IP on every other
    node, as a host-gateway network does. (antrea-agent replaces this with tunnels.)"""
    from kubernetes import client
    from pyroute2 import NetNS

    nodes = client.CoreV1Api(kube_client(lab)).list_node().items
    routes: list[tuple[str, str, str]] = []  # (node, cidr, via)
    for node in nodes:
        ip = next(a.address for a in node.status.addresses if a.type == "InternalIP")
        for cidr in node.spec.pod_cidrs or ([node.spec.pod_cidr] if node.spec.pod_cidr else []):
            if ":" not in cidr:
                routes.append((node.metadata.name, cidr, ip))
    for node in nodes:
        with NetNS(lab.netns(node.metadata.name)) as ns:
            for owner, cidr, via in routes:
                if owner != node.metadata.name:
                    ns.route("replace", dst=cidr, gateway=via)


def kube_client(lab: LabDir) -> ApiClient:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(lab.kubeconfig))


def wait_nodes_ready(lab: LabDir, names: list[str], timeout: float = 60.0) -> None:
    from kubernetes import client

    api = client.CoreV1Api(kube_client(lab))
    deadline = time.monotonic() + timeout
    missing = set(names)
    while time.monotonic() < deadline:
        ready = set()
        for node in api.list_node().items:
            conds = {c.type: c.status for c in (node.status.conditions or [])}
            if conds.get("Ready") == "True":
                ready.add(node.metadata.name)
        missing = set(names) - ready
        if not missing:
            return
        time.sleep(0.2)
    raise LabError(f"nodes not Ready after {timeout:.0f}s: {', '.join(sorted(missing))}; "
                   f"see {lab.logs}/<node>-kubelet.log")


def down(lab: LabDir, progress: Progress = print) -> bool:
    """Stop every process and delete every netns recorded for the lab; False if none."""
    from antrea_lab.node import netns, topology

    state = lab.load()
    if state is None:
        return False
    marker = str(lab.path)
    # Kubelets first (they own pod processes), then the rest; the API server last.
    order = sorted(state.pids, key=lambda c: (c == "apiserver", "kubelet" not in c))
    for component in order:
        if processes.stop(state.pids[component], marker):
            progress(f"  stopped {component} (pid {state.pids[component]})")
    # Whatever still runs inside a lab netns (pod containers, a stray kubelet) is ours.
    for name in [*pod_netns(lab), *state.netns]:
        for pid in processes.in_netns(name):
            processes.stop(pid, "", timeout=3)
    if state.topology:
        topology.destroy(state.topology)
    for name in [*state.netns, *pod_netns(lab)]:
        netns.delete(name)
    # A lab that is down has no state left (API objects, OVS databases, IPAM, pod dirs):
    # the next `up` starts a new cluster. Logs stay for a post-mortem.
    for entry in lab.path.iterdir():
        if entry != lab.logs and entry != lab.state_file:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    lab.state_file.unlink()
    progress(f"lab {lab.name} is down")
    return True


def pod_netns(lab: LabDir) -> list[str]:
    from antrea_lab.node import netns

    prefix = f"antrea-{lab.name}-pod-"
    return sorted(p.name for p in netns.NETNS_RUN_DIR.glob(f"{prefix}*"))

