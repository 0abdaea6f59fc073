"""The lab kubelet: registers a Node, keeps its Lease, and runs the pods bound to it.

    ip netns exec antrea-<lab>-<node> python -m antrea_lab.node.kubelet --node-name NODE \\
        --kubeconfig FILE --node-ip IP --lab-name LAB --cni-conf-dir DIR \\
        --cni-bin-dir DIR[:DIR] --pod-dir DIR [--install-bridge-cni]

Threads: one watches pods (``PodSource``), one reports the node (status, Lease, bridge
CNI), one supervises container processes, and a pool runs pod syncs serialised per pod
uid (``PodWorkers``). A sync is level-triggered: it compares the pod object with what runs
locally and moves one step closer (sandbox + CNI ADD, containers, status, teardown).
SIGTERM stops the kubelet only; pods keep running and are re-adopted on the next start.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from antrea_core.signals import stop_on_signals, wait_until_stopped
from antrea_lab.node import bridge_cni, netns, node_status
from antrea_lab.node.cni_exec import (
    Attachment,
    CNIError,
    CNIExecutor,
    capability_args_for_pod,
    pod_ips,
)
from antrea_lab.node.containers import Container, container_env, now_iso
from antrea_lab.node.pod_source import PodSource
from antrea_lab.node.pod_status import pod_status, will_restart
from antrea_lab.node.pod_workers import PodWorkers
from antrea_lab.node.prober import ReadinessTracker, run_probe
from antrea_lab.node.sandbox import Sandbox, load_all

log = logging.getLogger("antrea.lab.kubelet")

HEARTBEAT = 10.0
TICK = 1.0
SANDBOX_BACKOFF_MAX = 30.0
STATE_KEYS = ("waiting", "running", "terminated")


@dataclass
class KubeletConfig:
    node_name: str
    kubeconfig: Path
    node_ip: str
    lab_name: str
    cni_conf_dir: Path
    cni_bin_dirs: list[Path]
    pod_dir: Path
    install_bridge_cni: bool = False
    cni_cache_dir: Path | None = None
    ipam_dir: Path | None = None
    cni_timeout: float = 60.0

    def __post_init__(self) -> None:
        node_root = self.pod_dir.parent
        self.cni_cache_dir = self.cni_cache_dir or node_root / "cni" / "cache"
        self.ipam_dir = self.ipam_dir or node_root / "cni" / "ipam"


@dataclass
class PodRuntime:
    """What runs locally for one pod."""

    sandbox: Sandbox
    containers: list[Container] = field(default_factory=list)
    transitions: dict[str, str] = field(default_factory=dict)
    last_status: dict[str, Any] | None = None
    sandbox_backoff: float = 0.0
    sandbox_retry_at: float = 0.0  # monotonic; pod updates must not bypass the back-off
    last_event: dict[str, float] = field(default_factory=dict)


def _exclusive_states(status: dict[str, Any]) -> dict[str, Any]:
    """Null the other state keys so a merge patch replaces running/waiting/terminated."""
    for cs in status.get("containerStatuses", []):
        for key in ("state", "lastState"):
            st = cs.get(key) or {}
            cs[key] = {k: st.get(k) for k in STATE_KEYS}
    return status


class Kubelet:
    def __init__(self, cfg: KubeletConfig, api_client: client.ApiClient,
                 watch_client: client.ApiClient | None = None) -> None:
        self.cfg = cfg
        self.core = client.CoreV1Api(api_client)
        self.coord = client.CoordinationV1Api(api_client)
        assert cfg.cni_cache_dir is not None
        self.cni = CNIExecutor(cfg.cni_conf_dir, cfg.cni_bin_dirs, cfg.cni_cache_dir,
                               timeout=cfg.cni_timeout)
        self.source = PodSource(client.CoreV1Api(watch_client or api_client), cfg.node_name,
                                on_change=self._on_change, on_synced=self._on_synced)
        self.workers = PodWorkers(self.sync_pod)
        self.runtimes: dict[str, PodRuntime] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.node_uid: str | None = None
        self.network_ready = False
        self.node_transitions: dict[str, str] = {}
        self.bridge_installed = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------
    def run(self) -> None:
        self.start()
        wait_until_stopped(self.stopping)
        self.stop()

    def start(self) -> None:
        self.cfg.pod_dir.mkdir(parents=True, exist_ok=True)
        self._adopt_local()
        self.network_ready = self.cni.network_ready()
        self._register_node()
        self.source.start()
        for target, name in ((self._node_loop, "node-status"), (self._supervise, "supervisor")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("kubelet started node=%s ip=%s", self.cfg.node_name, self.cfg.node_ip)

    def stop(self) -> None:
        """Stop the kubelet's own threads; pods keep running (like a kubelet restart)."""
        self.stopping.set()
        self.source.stop()
        self.workers.stop(wait=True)
        log.info("kubelet stopped node=%s (pods left running)", self.cfg.node_name)

    # -- local state ----------------------------------------------------------------
    def _adopt_local(self) -> None:
        """Load sandboxes recorded on disk; the first list decides keep or tear down."""
        for sb in load_all(self.cfg.pod_dir):
            rt = PodRuntime(sandbox=sb)
            with self.lock:
                self.runtimes[sb.uid] = rt
            log.info("found local pod pod=%s/%s uid=%s", sb.namespace, sb.name, sb.uid)

    def _on_synced(self, uids: set[str]) -> None:
        with self.lock:
            local = list(self.runtimes)
        for uid in local:
            if uid not in uids:
                log.info("pod gone while kubelet was down uid=%s: tearing down", uid)
            self.workers.enqueue(uid)

    def _on_change(self, uid: str) -> None:
        self.workers.enqueue(uid)

    # -- pod sync -------------------------------------------------------------------
    def sync_pod(self, uid: str) -> None:
        if self.stopping.is_set():
            return
        pod = self.source.get(uid) if self.source.synced.is_set() else None
        with self.lock:
            rt = self.runtimes.get(uid)
        if not self.source.synced.is_set():
            return
        if pod is None:
            if rt is not None:
                self._teardown(rt, grace=2.0)
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            if rt is not None:
                grace = meta.get("deletionGracePeriodSeconds")
                if grace is None:
                    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                self._teardown(rt, grace=float(grace))
            self._delete_pod_object(pod)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and (
            rt is None or not any(c.alive() for c in rt.containers)
        ):
            return  # terminal: nothing to run again
        if rt is None:
            rt = PodRuntime(sandbox=Sandbox.new(self.cfg.lab_name, self.cfg.pod_dir, pod))
            rt.sandbox.start_time = now_iso()
            rt.sandbox.save()
            with self.lock:
                self.runtimes[uid] = rt
        self._sync_containers_spec(rt, pod)
        if not self._ensure_network(rt, pod):
            return
        delay = self._ensure_containers(rt, pod)
        self._report(rt, pod)
        if rt.last_status and rt.last_status["phase"] in ("Succeeded", "Failed"):
            self._release_network(rt)  # a finished pod gives its IP back, as kubelets do
        if delay is not None:
            self.workers.enqueue(uid, delay=delay)

    def _sync_containers_spec(self, rt: PodRuntime, pod: dict[str, Any]) -> None:
        if rt.containers:
            return
        rt.containers = [Container(c, rt.sandbox.path)
                         for c in (pod.get("spec") or {}).get("containers") or []]

    def _ensure_network(self, rt: PodRuntime, pod: dict[str, Any]) -> bool:
        sb = rt.sandbox
        if sb.host_network:
            sb.pod_ips = [self.cfg.node_ip]
            return True
        if sb.cni_result is not None:
            return True
        if not self.cni.network_ready():
            self._event(rt, pod, "Warning", "NetworkNotReady",
                        "network is not ready: " + node_status.NETWORK_NOT_READY_MSG)
            self._report(rt, pod, sandbox_ready=False)
            self.workers.enqueue(sb.uid, delay=2.0)
            return False
        if time.monotonic() < rt.sandbox_retry_at:
            return False
        sb.ensure_netns()
        att = self._attachment(sb, pod)
        try:
            result = self.cni.add(att)
        except CNIError as exc:
            log.warning("CNI ADD failed pod=%s/%s err=%s", sb.namespace, sb.name, exc)
            self._event(rt, pod, "Warning", "FailedCreatePodSandBox",
                        f'Failed to create pod sandbox: failed to setup network for sandbox '
                        f'"{sb.sandbox_id}": {exc}', every=0)
            try:  # release what the failed ADD may have allocated, as runtimes do
                self.cni.delete(att)
            except CNIError as del_exc:
                log.info("cleanup DEL after failed ADD failed: %s", del_exc)
            rt.sandbox_backoff = min(max(rt.sandbox_backoff * 2, 1.0), SANDBOX_BACKOFF_MAX)
            rt.sandbox_retry_at = time.monotonic() + rt.sandbox_backoff
            self._report(rt, pod, sandbox_ready=False)
            self.workers.enqueue(sb.uid, delay=rt.sandbox_backoff)
            return False
        sb.cni_result = result
        sb.pod_ips = pod_ips(result, att.ifname)
        sb.save()
        rt.sandbox_backoff = 0.0
        return True

    def _attachment(self, sb: Sandbox, pod: dict[str, Any] | None) -> Attachment:
        return Attachment(
            container_id=sb.sandbox_id,
            netns=sb.netns_path if sb.netns and Path(sb.netns_path).exists() else "",
            pod_namespace=sb.namespace, pod_name=sb.name, pod_uid=sb.uid,
            capability_args=capability_args_for_pod(pod) if pod else {},
        )

    def _ensure_containers(self, rt: PodRuntime, pod: dict[str, Any]) -> float | None:
        """Start/restart containers; returns the delay of the next needed sync."""
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        ip = rt.sandbox.pod_ips[0] if rt.sandbox.pod_ips else ""
        delays = []
        for c in rt.containers:
            if c.running():
                continue
            env = container_env(c.spec, pod, ip, self.cfg.node_name, self.cfg.node_ip)
            if not c.ever_started:
                c.start(rt.sandbox.netns or None, env)
                continue
            if not will_restart(policy, c.state.exit_code):
                continue
            if c.state.next_start == 0.0:
                c.schedule_restart()
            wait = c.state.next_start - time.time()
            if wait > 0:
                delays.append(wait)
                continue
            c.state.next_start = 0.0
            c.start(rt.sandbox.netns or None, env)
        for c in rt.containers:
            probed = "readinessProbe" in c.spec
            c.state.ready = bool(c.state.pid) and (c.probe_ready if probed else True)
        return min(delays) if delays else None

    def _report(self, rt: PodRuntime, pod: dict[str, Any], sandbox_ready: bool = True) -> None:
        sb = rt.sandbox
        status = pod_status(
            pod=pod, containers=rt.containers, pod_ips=sb.pod_ips, host_ip=self.cfg.node_ip,
            start_time=sb.start_time or now_iso(), sandbox_ready=sandbox_ready,
            transitions=rt.transitions,
        )
        if status == rt.last_status:
            return
        try:
            self._patch_status(pod, _exclusive_states(copy.deepcopy(status)))
            rt.last_status = status
        except ApiException as exc:
            if exc.status != 404:
                log.warning("pod status patch failed pod=%s/%s status=%s",
                            sb.namespace, sb.name, exc.status)
                self.workers.enqueue(sb.uid, delay=1.0)

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(
            meta["name"], meta["namespace"], {"status": status},
            _content_type="application/merge-patch+json",
        )

    # -- teardown -------------------------------------------------------------------
    def _teardown(self, rt: PodRuntime, grace: float) -> None:
        sb = rt.sandbox
        if not rt.containers:
            rt.containers = [Container({"name": p.name[: -len(".state.json")]}, sb.path)
                             for p in sb.path.glob("*.state.json")]
        if rt.containers:
            with ThreadPoolExecutor(max_workers=len(rt.containers)) as pool:
                list(pool.map(lambda c: c.stop(grace), rt.containers))
        self._release_network(rt)
        for p in [*sb.path.glob("*.state.json"), sb.path / "sandbox.json"]:
            p.unlink(missing_ok=True)
        with self.lock:
            self.runtimes.pop(sb.uid, None)
        log.info("pod torn down pod=%s/%s uid=%s", sb.namespace, sb.name, sb.uid)

    def _release_network(self, rt: PodRuntime) -> None:
        sb = rt.sandbox
        if not sb.host_network and not sb.network_torn_down:
            self.cni.delete(self._attachment(sb, None))  # raises → the sync is retried
            sb.network_torn_down = True
            sb.save()
        sb.delete_netns()

    def _delete_pod_object(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"]))
        try:
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=body)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # -- events ---------------------------------------------------------------------
    def _event(self, rt: PodRuntime, pod: dict[str, Any], etype: str, reason: str,
               message: str, every: float = 30.0) -> None:
        last = rt.last_event.get(reason, 0.0)
        if every and time.monotonic() - last < every:
            return
        rt.last_event[reason] = time.monotonic()
        meta = pod["metadata"]
        ts = now_iso()
        body = {
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}",
                         "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": reason, "message": message, "type": etype,
            "source": {"component": "kubelet", "host": self.cfg.node_name},
            "reportingComponent": "kubelet", "reportingInstance": self.cfg.node_name,
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException as exc:
            log.info("event not recorded reason=%s status=%s", reason, exc.status)

    # -- supervisor -----------------------------------------------------------------
    def _supervise(self) -> None:
        """Notice container exits and run readiness probes; queue a sync on changes."""
        readiness = ReadinessTracker()
        probing: set[int] = set()
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="prober") as pool:
            while not self.stopping.wait(0.5):
                with self.lock:
                    runtimes = list(self.runtimes.values())
                for rt in runtimes:
                    if any(c.state.pid and not c.alive() for c in rt.containers):
                        self.workers.enqueue(rt.sandbox.uid)
                    for c in rt.containers:
                        if id(c) not in probing and readiness.due(c):
                            probing.add(id(c))
                            pool.submit(self._probe, rt, c, readiness, probing)

    def _probe(self, rt: PodRuntime, c: Container, readiness: ReadinessTracker,
               probing: set[int]) -> None:
        try:
            sb = rt.sandbox
            ip = sb.pod_ips[0] if sb.pod_ips else ""
            probe = readiness.probe_of(c) or {}
            ok = run_probe(probe, c.spec, ip, sb.netns or None)
            if readiness.record(c, ok):
                log.info("readiness changed pod=%s/%s container=%s ready=%s",
                         sb.namespace, sb.name, c.name, c.probe_ready)
                self.workers.enqueue(sb.uid)
        finally:
            probing.discard(id(c))

    # -- node -----------------------------------------------------------------------
    def _register_node(self) -> None:
        body = node_status.node_object(self.cfg.node_name, self.cfg.node_ip,
                                       self.network_ready, self.node_transitions)
        while not self.stopping.is_set():
            try:
                self.core.create_node(body)
                log.info("registered node %s", self.cfg.node_name)
                break
            except ApiException as exc:
                if exc.status == 409:
                    self.core.patch_node(self.cfg.node_name,
                                         {"metadata": {"labels": body["metadata"]["labels"]}})
                    break
                log.warning("node registration failed status=%s; retrying", exc.status)
            except Exception as exc:
                log.warning("node registration failed: %s; retrying", exc)
            self.stopping.wait(1.0)
        node = self.core.read_node(self.cfg.node_name)
        self.node_uid = node.metadata.uid
        self._post_node_status()
        self._renew_lease()

    def _post_node_status(self) -> None:
        status = node_status.node_status(self.cfg.node_name, self.cfg.node_ip,
                                         self.network_ready, self.node_transitions)
        self.core.patch_node_status(self.cfg.node_name, {"status": status})

    def _renew_lease(self) -> None:
        body = node_status.lease_object(self.cfg.node_name, self.node_uid)
        try:
            self.coord.replace_namespaced_lease(self.cfg.node_name, "kube-node-lease", body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coord.create_namespaced_lease("kube-node-lease", body)

    def _node_loop(self) -> None:
        last_beat = time.monotonic()
        # Poll fast until the network is ready: node Ready gates the whole lab's start.
        while not self.stopping.wait(TICK if self.network_ready else 0.2):
            try:
                if self.cfg.install_bridge_cni and not self.bridge_installed:
                    self._install_bridge_cni()
                ready = self.cni.network_ready()
                beat = time.monotonic() - last_beat >= HEARTBEAT
                if ready != self.network_ready or beat:
                    if ready != self.network_ready:
                        log.info("network ready=%s", ready)
                    self.network_ready = ready
                    self._post_node_status()
                    self._renew_lease()
                    last_beat = time.monotonic()
            except Exception as exc:
                log.warning("node status update failed: %s", exc)

    def _install_bridge_cni(self) -> None:
        spec = json.loads(self.core.read_node(self.cfg.node_name,
                                              _preload_content=False).data).get("spec") or {}
        cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
        if not cidrs:
            return
        assert self.cfg.ipam_dir is not None
        bridge_cni.install(self.cfg.cni_conf_dir, cidrs, self.cfg.ipam_dir)
        self.bridge_installed = True


def leave_private_mount_ns(target: str) -> None:
    """Undo the private mount namespace of ``ip netns exec``, keeping the node netns.

    Pod netns are bind mounts under /run/netns; made in the slave mount namespace that
    ``ip netns exec`` gives us they would be invisible to everyone else (tests,
    antrea-agent, ``antrea-lab down``). Must run while the process has one thread.
    """
    if target == "none":
        return
    if target == "parent":
        target = f"/proc/{os.getppid()}/ns/mnt"
    try:
        if os.readlink(target) == os.readlink("/proc/self/ns/mnt"):
            return
        netns.enter_mount_ns(target)
        log.info("entered host mount namespace %s", target)
    except OSError as exc:
        log.warning("staying in own mount namespace (%s): pod netns may be invisible "
                    "outside the kubelet", exc)


def parse_args(argv: list[str] | None = None) -> KubeletConfig:
    p = argparse.ArgumentParser(prog="antrea_lab.node.kubelet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node-name", required=True)
    p.add_argument("--kubeconfig", required=True, type=Path)
    p.add_argument("--node-ip", required=True)
    p.add_argument("--lab-name", required=True)
    p.add_argument("--cni-conf-dir", required=True, type=Path)
    p.add_argument("--cni-bin-dir", required=True,
                   help="colon-separated plugin search path")
    p.add_argument("--pod-dir", required=True, type=Path)
    p.add_argument("--cni-cache-dir", type=Path, default=None)
    p.add_argument("--install-bridge-cni", action="store_true")
    p.add_argument("--host-mount-ns", default="parent",
                   help="mount namespace to create pod netns in: a path, 'parent' (that of "
                        "the process that ran `ip netns exec`, if different) or 'none'")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    leave_private_mount_ns(a.host_mount_ns)
    return KubeletConfig(
        node_name=a.node_name, kubeconfig=a.kubeconfig, node_ip=a.node_ip,
        lab_name=a.lab_name, cni_conf_dir=a.cni_conf_dir,
        cni_bin_dirs=[Path(d) for d in a.cni_bin_dir.split(":") if d],
        pod_dir=a.pod_dir, install_bridge_cni=a.install_bridge_cni,
        cni_cache_dir=a.cni_cache_dir,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    watch_api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    kubelet = Kubelet(cfg, api, watch_api)
    stop_on_signals(kubelet.stopping)
    kubelet.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
