"""The controller-manager process against the lab API server process (loopback, free port)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes.client.exceptions import ApiException

from antrea_lab.apiserver import pki
from antrea_lab.controllers.informer import Informer
from antrea_lab.controllers.kubeclient import (
    CONFIG_MAPS,
    ENDPOINT_SLICES,
    ENDPOINTS,
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
    KubeClient,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PY = sys.executable
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(fn: Callable[[], T | None], timeout: float = 15.0, what: str = "") -> T:
    """Poll fn until it returns something truthy; errors (API, connection, assertion)
    count as "not yet" and the last one is reported on timeout."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or fn.__name__}: {last!r}")


def stop_process(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise
    return proc.returncode


@dataclass
class Cluster:
    tmp: Path
    apiserver: subprocess.Popen[bytes]
    client: KubeClient
    kcm_kubeconfig: Path
    kcm_args: list[str]
    apiserver_cmd: list[str] = field(default_factory=list)
    kcm: subprocess.Popen[bytes] | None = None
    kcm_logs: list[Path] = field(default_factory=list)

    def restart_apiserver(self) -> None:
        stop_process(self.apiserver)
        with (self.tmp / "apiserver.log").open("ab") as out:
            self.apiserver = subprocess.Popen(self.apiserver_cmd, stdout=out,
                                              stderr=subprocess.STDOUT)

    def start_kcm(self) -> None:
        log = self.tmp / f"controllers-{len(self.kcm_logs)}.log"
        self.kcm_logs.append(log)
        with log.open("wb") as out:
            self.kcm = subprocess.Popen(
                [PY, "-m", "antrea_lab.controllers", "--kubeconfig", str(self.kcm_kubeconfig),
                 *self.kcm_args], stdout=out, stderr=subprocess.STDOUT)

    def stop_kcm(self) -> int:
        assert self.kcm is not None
        code = stop_process(self.kcm)
        self.kcm = None
        return code

    def kcm_log(self) -> str:
        return "".join(p.read_text() for p in self.kcm_logs)


def start_cluster(tmp: Path, kcm_args: list[str], start_kcm: bool = True,
                  apiserver_args: tuple[str, ...] = ()) -> Cluster:
    port = free_port()
    pki.ensure_pki(tmp / "pki", ["127.0.0.1"], ["localhost"])
    admin, kcm = uuid.uuid4().hex, uuid.uuid4().hex
    (tmp / "tokens.csv").write_text(f'{admin},admin,uid-admin,"system:masters"\n'
                                    f"{kcm},system:kube-controller-manager,uid-kcm,\n")
    server = f"https://127.0.0.1:{port}"
    pki.write_kubeconfig(tmp / "kubeconfig", server, tmp / "pki" / "ca.crt", admin, "admin")
    pki.write_kubeconfig(tmp / "kcm.kubeconfig", server, tmp / "pki" / "ca.crt", kcm,
                         "system:kube-controller-manager")
    cmd = [PY, "-m", "antrea_lab.apiserver", "--data-dir", str(tmp / "data"),
           "--pki-dir", str(tmp / "pki"), "--token-file", str(tmp / "tokens.csv"),
           "--listen", f"127.0.0.1:{port}", *apiserver_args]
    with (tmp / "apiserver.log").open("wb") as out:
        apiserver = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    client = KubeClient.from_kubeconfig(tmp / "kubeconfig")
    try:
        eventually(lambda: client.request("GET", "/api/v1/namespaces/default"), 20,
                   "the API server")
    except AssertionError:
        stop_process(apiserver)
        raise AssertionError((tmp / "apiserver.log").read_text()[-3000:]) from None
    cluster = Cluster(tmp, apiserver, client, tmp / "kcm.kubeconfig", kcm_args,
                      apiserver_cmd=cmd)
    if start_kcm:
        cluster.start_kcm()
    return cluster


def teardown(cluster: Cluster) -> None:
    if cluster.kcm is not None:
        assert cluster.stop_kcm() == 0, "controller-manager did not exit cleanly on SIGTERM"
    stop_process(cluster.apiserver)
    cluster.client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("h3-cluster"), [
        "--cluster-cidr", "10.244.0.0/16", "--cluster-cidr", "fd00:10:244::/56",
        "--node-cidr-mask-size", "24", "--node-cidr-mask-size-ipv6", "64"])
    try:
        yield c
    finally:
        teardown(c)


# -- helpers ------------------------------------------------------------------------------

def make_node(c: Cluster, name: str, ready: bool = True, labels: dict | None = None,
              taints: list | None = None) -> dict[str, Any]:
    c.client.create(NODES, {"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": name, "labels": labels or {}},
                            "spec": {"taints": taints or []}})
    return set_node_ready(c, name, ready)


def set_node_ready(c: Cluster, name: str, ready: bool) -> dict[str, Any]:
    return c.client.patch(NODES, name, {"status": {"conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "reason": "Test",
         "message": "set by test"}], "allocatable": {"pods": "110"}}}, subresource="status")


def make_namespace(c: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    c.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": name}})
    return name


def make_pod(c: Cluster, ns: str, name: str, labels: dict | None = None,
             node: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "c", "image": "lab",
                                            "ports": [{"name": "web", "containerPort": 8080}]}],
                            **spec}
    if node:
        body["nodeName"] = node
    return c.client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": name, "labels": labels or {}},
                                  "spec": body}, namespace=ns)


def set_pod_status(c: Cluster, ns: str, name: str, ip: str, ready: bool) -> None:
    c.client.patch(PODS, name, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}},
        namespace=ns, subresource="status")


def slices_of(c: Cluster, ns: str, svc: str) -> list[dict[str, Any]]:
    return c.client.list(ENDPOINT_SLICES, namespace=ns,
                         label_selector=f"kubernetes.io/service-name={svc}")["items"]


def endpoint_view(c: Cluster, ns: str, svc: str) -> dict[str, tuple[str, bool, bool, bool]]:
    """pod name -> (address, ready, serving, terminating) over all the Service's slices."""
    out = {}
    for s in slices_of(c, ns, svc):
        for e in s.get("endpoints") or []:
            cond = e["conditions"]
            out[e["targetRef"]["name"]] = (e["addresses"][0], cond["ready"], cond["serving"],
                                           cond["terminating"])
    return out


# -- informer against the real server -----------------------------------------------------

def test_informer_relists_after_its_resource_version_expired(tmp_path: Path) -> None:
    c = start_cluster(tmp_path, [], start_kcm=False, apiserver_args=("--watch-history", "5"))
    inf = Informer(c.client, CONFIG_MAPS)
    try:
        ns = make_namespace(c, "relist")
        c.client.create(CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "old"}}, namespace=ns)
        inf.start()
        assert inf.wait_synced(10)
        eventually(lambda: inf.get(f"{ns}/old"), what="initial list")
        inf.stop()
        stale = inf.resource_version
        # While the informer is away, more changes than the server's watch window.
        c.client.delete(CONFIG_MAPS, "old", namespace=ns)
        for i in range(20):
            c.client.create(CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": f"cm-{i}"}}, namespace=ns)
        inf.start()  # resumes from the stale version: the server answers 410
        eventually(lambda: inf.relists == 2 and inf.get(f"{ns}/cm-19"), what="relist")
        assert inf.resource_version != stale
        assert inf.get(f"{ns}/old") is None
        assert sum(1 for k in inf.list_keys() if k.startswith(f"{ns}/cm-")) == 20
    finally:
        inf.stop()
        teardown(c)


# -- node IPAM ----------------------------------------------------------------------------

def test_nodes_get_dual_stack_pod_cidrs_and_keep_them_across_restart(cluster: Cluster) -> None:
    for name in ("ipam-a", "ipam-b"):
        make_node(cluster, name)

    def cidrs(name: str) -> list[str] | None:
        return cluster.client.get(NODES, name).get("spec", {}).get("podCIDRs")

    a = eventually(lambda: cidrs("ipam-a"), what="podCIDRs of ipam-a")
    b = eventually(lambda: cidrs("ipam-b"), what="podCIDRs of ipam-b")
    assert len(a) == 2 and len(b) == 2
    assert {a[0], b[0]} == {"10.244.0.0/24", "10.244.1.0/24"}
    assert {a[1], b[1]} == {"fd00:10:244::/64", "fd00:10:244:1::/64"}
    assert cluster.client.get(NODES, "ipam-a")["spec"]["podCIDR"] == a[0]

    # Restart: the used set is rebuilt from the Nodes, nothing is reassigned.
    assert cluster.stop_kcm() == 0
    make_node(cluster, "ipam-c")
    cluster.start_kcm()
    c = eventually(lambda: cidrs("ipam-c"), what="podCIDRs of ipam-c")
    assert c == ["10.244.2.0/24", "fd00:10:244:2::/64"]
    assert cidrs("ipam-a") == a and cidrs("ipam-b") == b

    # Deleting a node releases its CIDRs for the next node.
    cluster.client.delete(NODES, "ipam-b")
    eventually(lambda: "released node=ipam-b" in cluster.kcm_log(), what="release log")
    make_node(cluster, "ipam-d")
    assert eventually(lambda: cidrs("ipam-d"), what="podCIDRs of ipam-d") == b
    for name in ("ipam-a", "ipam-c", "ipam-d"):
        cluster.client.delete(NODES, name)


def test_cidr_exhaustion_emits_event(tmp_path: Path) -> None:
    c = start_cluster(tmp_path, ["--cluster-cidr", "10.250.0.0/23", "--node-cidr-mask-size",
                                 "24", "--controllers", "nodeipam"])
    try:
        for name in ("ex-1", "ex-2", "ex-3"):
            make_node(c, name)
        eventually(lambda: all(c.client.get(NODES, n)["spec"].get("podCIDRs")
                               for n in ("ex-1", "ex-2")), what="two nodes assigned")

        def exhausted_event() -> list[dict[str, Any]]:
            return [e for e in c.client.list(EVENTS, namespace="default")["items"]
                    if e.get("reason") == "CIDRNotAvailable"
                    and e["involvedObject"]["name"] == "ex-3"]

        eventually(exhausted_event, what="CIDRNotAvailable event")
        assert not c.client.get(NODES, "ex-3")["spec"].get("podCIDRs")
        assert "cannot allocate podCIDR node=ex-3" in c.kcm_log()
        # Room again after a deletion: the waiting node gets the freed CIDR.
        freed = c.client.get(NODES, "ex-1")["spec"]["podCIDRs"]
        c.client.delete(NODES, "ex-1")
        assert eventually(lambda: c.client.get(NODES, "ex-3")["spec"].get("podCIDRs"),
                          what="ex-3 assigned after release") == freed
    finally:
        teardown(c)


# -- EndpointSlices -----------------------------------------------------------------------

def test_endpointslices_follow_pods_readiness_and_selector(cluster: Cluster) -> None:
    make_node(cluster, "eps-node", labels={"topology.kubernetes.io/zone": "zone-a"})
    ns = make_namespace(cluster, "eps")
    svc = cluster.client.create(SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}, namespace=ns)
    for i in (1, 2, 3):
        make_pod(cluster, ns, f"web-{i}", {"app": "web"}, node="eps-node")
    make_pod(cluster, ns, "other", {"app": "db"}, node="eps-node")
    set_pod_status(cluster, ns, "web-1", "10.244.9.1", ready=True)
    set_pod_status(cluster, ns, "web-2", "10.244.9.2", ready=True)
    set_pod_status(cluster, ns, "web-3", "10.244.9.3", ready=False)
    set_pod_status(cluster, ns, "other", "10.244.9.4", ready=True)

    want = {"web-1": ("10.244.9.1", True, True, False),
            "web-2": ("10.244.9.2", True, True, False),
            "web-3": ("10.244.9.3", False, False, False)}
    eventually(lambda: endpoint_view(cluster, ns, "web") == want, what="slice content")
    [s] = slices_of(cluster, ns, "web")
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert s["metadata"]["name"].startswith("web-")
    owner = s["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("Service", svc["metadata"]["uid"])
    ep = next(e for e in s["endpoints"] if e["targetRef"]["name"] == "web-1")
    assert (ep["nodeName"], ep["zone"]) == ("eps-node", "zone-a")

    def legacy() -> tuple[list[str], list[str]]:
        [subset] = cluster.client.get(ENDPOINTS, "web", namespace=ns)["subsets"]
        return ([a["ip"] for a in subset.get("addresses") or []],
                [a["ip"] for a in subset.get("notReadyAddresses") or []])

    eventually(lambda: legacy() == (["10.244.9.1", "10.244.9.2"], ["10.244.9.3"]),
               what="legacy Endpoints")

    # Readiness flips and deletions are followed.
    set_pod_status(cluster, ns, "web-3", "10.244.9.3", ready=True)
    cluster.client.delete(PODS, "web-2", namespace=ns, grace_period_seconds=0)
    eventually(lambda: endpoint_view(cluster, ns, "web") == {
        "web-1": ("10.244.9.1", True, True, False),
        "web-3": ("10.244.9.3", True, True, False)}, what="slice after changes")

    # A label change moves a pod in and out of the Service.
    cluster.client.patch(PODS, "other", {"metadata": {"labels": {"app": "web"}}}, namespace=ns)
    eventually(lambda: "other" in endpoint_view(cluster, ns, "web"), what="relabelled pod")

    # Removing the selector deletes the managed slices.
    cluster.client.patch(SERVICES, "web", {"spec": {"selector": None}}, namespace=ns)
    eventually(lambda: slices_of(cluster, ns, "web") == [], what="slices deleted")


def test_250_ready_pods_fill_three_slices_of_at_most_100(cluster: Cluster) -> None:
    make_node(cluster, "scale-node")
    ns = make_namespace(cluster, "scale")
    cluster.client.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                     "metadata": {"name": "big"},
                                     "spec": {"selector": {"app": "big"},
                                              "ports": [{"port": 80, "targetPort": 8080}]}},
                          namespace=ns)
    start = time.monotonic()
    for i in range(250):
        make_pod(cluster, ns, f"big-{i}", {"app": "big"}, node="scale-node")
        set_pod_status(cluster, ns, f"big-{i}", f"10.245.{i // 200}.{i % 200 + 1}", True)

    def sizes() -> list[int]:
        return sorted(len(s.get("endpoints") or []) for s in slices_of(cluster, ns, "big"))

    eventually(lambda: sizes() == [50, 100, 100], timeout=60, what="three slices")
    elapsed = time.monotonic() - start
    view = endpoint_view(cluster, ns, "big")
    assert len(view) == 250 and all(ready for _, ready, _, _ in view.values())
    print(f"250 pods created+ready and sliced in {elapsed:.1f}s")


def test_endpointslices_of_deleted_service_go_away(cluster: Cluster) -> None:
    ns = make_namespace(cluster, "epsdel")
    cluster.client.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                     "metadata": {"name": "gone"},
                                     "spec": {"selector": {"app": "g"}, "ports": [{"port": 80}]}},
                          namespace=ns)
    eventually(lambda: slices_of(cluster, ns, "gone"), what="placeholder slice")
    cluster.client.delete(SERVICES, "gone", namespace=ns)
    eventually(lambda: slices_of(cluster, ns, "gone") == [], what="slices of deleted service")

    def endpoints_gone() -> bool:
        try:
            cluster.client.get(ENDPOINTS, "gone", namespace=ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(endpoints_gone, what="Endpoints deleted")


# -- namespaces ---------------------------------------------------------------------------

def test_new_namespace_gets_default_sa_and_root_ca(cluster: Cluster) -> None:
    ns = make_namespace(cluster, "sa")
    eventually(lambda: cluster.client.get(SERVICE_ACCOUNTS, "default", namespace=ns),
               what="default ServiceAccount")
    cm = eventually(lambda: cluster.client.get(CONFIG_MAPS, "kube-root-ca.crt", namespace=ns),
                    what="kube-root-ca.crt")
    assert cm["data"]["ca.crt"] == (cluster.tmp / "pki" / "ca.crt").read_text()
    # Deleted by someone: recreated.
    cluster.client.delete(SERVICE_ACCOUNTS, "default", namespace=ns)
    eventually(lambda: cluster.client.get(SERVICE_ACCOUNTS, "default", namespace=ns),
               what="default ServiceAccount recreated")


def test_namespace_deletion_empties_and_finalizes(cluster: Cluster) -> None:
    make_node(cluster, "ns-node")
    ns = make_namespace(cluster, "del")
    cluster.client.create(CONFIG_MAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "cm"}, "data": {"k": "v"}},
                          namespace=ns)
    cluster.client.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                     "metadata": {"name": "svc"},
                                     "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
                          namespace=ns)
    make_pod(cluster, ns, "pod", {"app": "x"}, node="ns-node")
    eventually(lambda: cluster.client.get(SERVICE_ACCOUNTS, "default", namespace=ns))
    cluster.client.delete(NAMESPACES, ns)

    def gone() -> bool:
        # Play the kubelet: confirm the graceful deletion of pods on our fake node.
        for pod in cluster.client.list(PODS, namespace=ns)["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                try:
                    cluster.client.delete(PODS, pod["metadata"]["name"], namespace=ns,
                                          grace_period_seconds=0)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        try:
            cluster.client.get(NAMESPACES, ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, timeout=30, what=f"namespace {ns} removed")
    assert f"finalized namespace={ns}" in cluster.kcm_log()
    for res in (CONFIG_MAPS, SERVICES, PODS, SERVICE_ACCOUNTS, ENDPOINT_SLICES):
        assert cluster.client.list(res, namespace=ns)["items"] == [], res.plural


# -- scheduler ----------------------------------------------------------------------------

def bound_node(c: Cluster, ns: str, name: str) -> str | None:
    return c.client.get(PODS, name, namespace=ns)["spec"].get("nodeName")


def test_scheduler_binds_to_least_loaded_matching_node(cluster: Cluster) -> None:
    tag = uuid.uuid4().hex[:4]
    busy, idle = f"sch-busy-{tag}", f"sch-idle-{tag}"
    make_node(cluster, busy, labels={"pool": tag})
    make_node(cluster, idle, labels={"pool": tag})
    make_node(cluster, f"sch-other-{tag}")
    make_node(cluster, f"sch-down-{tag}", ready=False, labels={"pool": tag})
    ns = make_namespace(cluster, "sched")
    for i in range(3):
        make_pod(cluster, ns, f"pinned-{i}", node=busy)
    make_pod(cluster, ns, "free", nodeSelector={"pool": tag})
    assert eventually(lambda: bound_node(cluster, ns, "free"), what="binding") == idle
    conds = cluster.client.get(PODS, "free", namespace=ns)["status"].get("conditions") or []
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in conds)

    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [busy]}]}]}}}
    make_pod(cluster, ns, "by-name", affinity=affinity)
    assert eventually(lambda: bound_node(cluster, ns, "by-name"), what="affinity") == busy


def test_unschedulable_pod_waits_for_a_fitting_node(cluster: Cluster) -> None:
    tag = uuid.uuid4().hex[:4]
    ns = make_namespace(cluster, "unsched")
    make_pod(cluster, ns, "waiter", nodeSelector={"special": tag})

    def unschedulable() -> dict[str, Any] | None:
        for cond in cluster.client.get(PODS, "waiter", namespace=ns)["status"].get(
                "conditions") or []:
            if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                return cond
        return None

    cond = eventually(unschedulable, what="Unschedulable condition")
    assert cond["status"] == "False"
    assert "didn't match Pod's node affinity/selector" in cond["message"]
    assert bound_node(cluster, ns, "waiter") is None

    # A tainted fitting node is still not enough without a toleration ...
    node = f"sch-special-{tag}"
    make_node(cluster, node, labels={"special": tag},
              taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    time.sleep(1.0)
    assert bound_node(cluster, ns, "waiter") is None
    # ... until the taint goes away: the node change retries the pod.
    cluster.client.patch(NODES, node, {"spec": {"taints": None}})
    assert eventually(lambda: bound_node(cluster, ns, "waiter"), what="late binding") == node


def test_controllers_survive_an_api_server_restart(cluster: Cluster) -> None:
    cluster.restart_apiserver()
    eventually(lambda: cluster.client.request("GET", "/api/v1/namespaces/default"), 20,
               "the restarted API server")
    make_node(cluster, "after-restart")
    eventually(lambda: cluster.client.get(NODES, "after-restart")["spec"].get("podCIDRs"),
               timeout=60, what="podCIDR assigned after the API server came back")
    assert cluster.kcm is not None and cluster.kcm.poll() is None


def test_controller_manager_exits_cleanly_on_sigterm(cluster: Cluster) -> None:
    assert cluster.kcm is not None
    start = time.monotonic()
    assert cluster.stop_kcm() == 0
    assert time.monotonic() - start < 5
    assert "shutting down" in cluster.kcm_log()
    cluster.start_kcm()
    # Back in business after the restart.
    ns = make_namespace(cluster, "restart")
    eventually(lambda: cluster.client.get(SERVICE_ACCOUNTS, "default", namespace=ns),
               what="controllers working after restart")

