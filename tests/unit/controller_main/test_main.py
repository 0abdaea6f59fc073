"""antrea-controller: argument/config errors, and the daemon assembled against the lab API
server in-process (CA published, TLS served, a NetworkPolicy computed into the store)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from waiting import wait_for

from antrea_core.apis.controlplane import ObjectKind
from antrea_core.config.loading import load_controller_config
from antrea_core.controller import main
from antrea_core.controller.certificates import CertificateError
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import CONFIG_MAPS, NAMESPACES, NETWORK_POLICIES, PODS

pytestmark = pytest.mark.unit

CONTROLLER = str(Path(sys.executable).parent / "antrea-controller")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONTROLLER, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBERNETES_SERVICE_HOST": ""})


def test_config_error_exits_2_naming_the_key(tmp_path: Path):
    conf = tmp_path / "antrea-controller.conf"
    conf.write_text("apiPort: 70000\n")
    proc = run_cli("--config", str(conf))
    assert proc.returncode == 2
    assert "apiPort" in proc.stderr and str(conf) in proc.stderr


def test_bad_bind_address_exits_2(tmp_path: Path):
    proc = run_cli("--bind-address", "not-an-ip")
    assert proc.returncode == 2
    assert "--bind-address" in proc.stderr


def test_missing_credentials_exit_1_saying_where(tmp_path: Path):
    proc = run_cli("--kubeconfig", str(tmp_path / "missing"), "--cert-dir", str(tmp_path))
    assert proc.returncode == 1
    assert "cannot load Kubernetes credentials" in proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_handshake(port: int, ca_pem: str) -> str:
    ctx = ssl.create_default_context(cadata=ca_pem)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            ctx.wrap_socket(sock, server_hostname="antrea.kube-system.svc") as tls:
        return tls.version() or ""


def policy(name: str) -> dict:
    return {"metadata": {"name": name},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                     "policyTypes": ["Ingress"]}}


def test_controller_publishes_ca_serves_tls_and_computes_policies(apiserver, raw: RawClient,
                                                                   tmp_path: Path):
    raw.create(NAMESPACES, {"metadata": {"name": "app"}})
    raw.create(PODS, {"metadata": {"name": "web", "labels": {"app": "web"}},
                      "spec": {"nodeName": "n1", "containers": [{"name": "c",
                                                                  "image": "x"}]}}, "app")
    raw.create(NETWORK_POLICIES, policy("before-start"), "app")
    port = free_port()
    cfg = load_controller_config(None, {"apiPort": port})
    stop = threading.Event()
    running = main.start(cfg, kubeconfig=str(apiserver.kubeconfig), bind_address="127.0.0.1",
                         cert_dir=tmp_path / "certs", stop=stop, watch_timeout=30)
    try:
        assert running.server.port == port
        ca = raw.get(CONFIG_MAPS, "antrea-ca", "kube-system")["data"]["ca.crt"]
        assert ca == (tmp_path / "certs" / "ca.crt").read_text()
        assert tls_handshake(port, ca).startswith("TLSv1.")
        names = lambda: {o.source.name for o, _ in  # noqa: E731
                         running.store.list(ObjectKind.NETWORK_POLICY)}
        assert names() == {"before-start"}  # published by the initial sync
        raw.create(NETWORK_POLICIES, policy("after-start"), "app")
        wait_for(lambda: names() == {"before-start", "after-start"}, 10,
                 "the new policy in the store")
        raw.delete(NETWORK_POLICIES, "before-start", "app")
        wait_for(lambda: names() == {"after-start"}, 10, "the deletion in the store")
    finally:
        running.stop()
    for informer in running.informers:
        assert informer._thread is not None and not informer._thread.is_alive()


def test_secret_mode_without_secret_fails_naming_it(apiserver, tmp_path: Path):
    cfg = load_controller_config(None, {"selfSignedCert": False, "apiPort": free_port()})
    with pytest.raises(CertificateError, match="antrea-controller-tls"):
        main.start(cfg, kubeconfig=str(apiserver.kubeconfig), bind_address="127.0.0.1",
                   cert_dir=tmp_path, stop=threading.Event())


class Recording:
    """PolicyEventHandler of a fake agent."""

    def __init__(self) -> None:
        self.policies: dict[str, str] = {}  # internal name -> source name
        self.lock = threading.Lock()

    def replace_all(self, policies, applied_to_groups, address_groups) -> None:
        with self.lock:
            self.policies = {p.name: p.source.name for p in policies}

    def apply(self, event) -> None:
        if event.kind != ObjectKind.NETWORK_POLICY:
            return
        with self.lock:
            if event.obj is None:
                self.policies.pop(event.name, None)
            else:
                self.policies[event.name] = event.obj.source.name


def test_a_node_discovers_the_controller_and_receives_its_policies(
        apiserver, raw: RawClient, node_kubeconfig: Path, tmp_path: Path):
    from antrea_core.agent.controlplane import discovery
    from antrea_core.k8s.clientconfig import api_client
    from antrea_core.k8s.rawclient import MERGE_PATCH
    from antrea_core.k8s.resources import ENDPOINT_SLICES, SERVICES

    raw.create(NAMESPACES, {"metadata": {"name": "app"}})
    raw.create(PODS, {"metadata": {"name": "web", "labels": {"app": "web"}},
                      "spec": {"nodeName": "n1", "containers": [{"name": "c",
                                                                  "image": "x"}]}}, "app")
    raw.request("PATCH", PODS.path("app", "web") + "/status", body={"status": {
        "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]}},
        content_type=MERGE_PATCH)
    raw.create(NETWORK_POLICIES, policy("deny-web"), "app")
    port = free_port()
    running = main.start(load_controller_config(None, {"apiPort": port}),
                         kubeconfig=str(apiserver.kubeconfig), bind_address="127.0.0.1",
                         cert_dir=tmp_path / "certs", stop=threading.Event(),
                         watch_timeout=30)
    raw.create(SERVICES, {"metadata": {"name": "antrea"}, "spec": {"ports": [
        {"name": "api", "port": 443, "targetPort": port}]}}, "kube-system")
    raw.create(ENDPOINT_SLICES, {
        "metadata": {"name": "antrea-1", "labels": {"kubernetes.io/service-name": "antrea"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}],
        "ports": [{"name": "api", "port": port}]}, "kube-system")
    handler = Recording()
    node_api = api_client(str(node_kubeconfig))
    watch = discovery.start_watch(node_api, "n1", handler, timeout=10)
    try:
        assert watch.wait_synced(10)
        assert list(handler.policies.values()) == ["deny-web"]
        raw.delete(NETWORK_POLICIES, "deny-web", "app")
        wait_for(lambda: not handler.policies, 10, "the deletion at the node")
    finally:
        watch.stop()
        running.stop()
        node_api.close()


def test_the_daemon_serves_until_sigterm_then_exits_0(apiserver, raw: RawClient,
                                                      tmp_path: Path):
    import signal
    import time

    port = free_port()
    conf = tmp_path / "antrea-controller.conf"
    conf.write_text(f"apiPort: {port}\n")
    log = tmp_path / "controller.log"
    # A file, not a pipe: a pipe nobody reads while the daemon runs can block its logging.
    with log.open("w") as out:
        proc = subprocess.Popen([CONTROLLER, "--config", str(conf), "--kubeconfig",
                                 str(apiserver.kubeconfig), "--bind-address", "127.0.0.1",
                                 "--cert-dir", str(tmp_path / "certs")],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        def serving() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return bool(tls_handshake(port, (tmp_path / "certs" / "ca.crt").read_text()))
            except OSError:
                return False
        wait_for(serving, 60, "the controller to serve TLS", every=0.2)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # the daemon prints its threads' stacks
            time.sleep(1)
            raise AssertionError(
                f"still running 20 s after SIGTERM:\n{log.read_text()}") from None
        assert code == 0
        assert time.monotonic() - start < 10
        text = log.read_text()
        assert "serving the control-plane API" in text and "stopped" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
