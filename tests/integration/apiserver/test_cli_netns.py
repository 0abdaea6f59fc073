"""`python -m antrea_lab.apiserver` as a process: netns listener, SIGTERM flush, restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import urllib3

pytestmark = pytest.mark.integration

TOKEN = "it-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (ip netns add)")
    name = f"antrea-hapi-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def start(tmp: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "antrea_lab.apiserver", "--data-dir", str(tmp / "state"),
         "--pki-dir", str(tmp / "pki"), "--token-file", str(tmp / "tokens.csv"),
         "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "apiserver.log", "ab"))  # noqa: SIM115
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((tmp / "apiserver.log").read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("API server did not start")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(20)


def test_listens_in_netns_and_persists_across_sigterm(tmp_path, netns):
    (tmp_path / "tokens.csv").write_text(f'{TOKEN},admin,uid-admin,"system:masters"\n')
    port, ns_port = free_port(), free_port()
    proc = start(tmp_path, port, ["--listen-netns", f"{netns}=127.0.0.1:{ns_port}"])
    try:
        pool = urllib3.PoolManager(ca_certs=str(tmp_path / "pki" / "ca.crt"))
        hdrs = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        r = pool.request("POST", f"https://127.0.0.1:{port}/api/v1/namespaces/default/configmaps",
                         body=json.dumps({"metadata": {"name": "kept"}}).encode(), headers=hdrs)
        assert r.status == 201
        rv = int(json.loads(r.data)["metadata"]["resourceVersion"])
        # From inside the namespace, the same server answers on the netns socket.
        probe = (
            "import urllib3,sys;"
            f"p=urllib3.PoolManager(ca_certs='{tmp_path / 'pki' / 'ca.crt'}');"
            f"r=p.request('GET','https://127.0.0.1:{ns_port}/api/v1/namespaces/default/"
            f"configmaps/kept',headers={{'Authorization':'Bearer {TOKEN}'}});"
            "sys.stdout.write(str(r.status))")
        out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", probe],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout == "200", out.stderr
        # The kubernetes Service points at the address nodes route to.
        r = pool.request("GET", f"https://127.0.0.1:{port}/api/v1/namespaces/default/"
                         "endpoints/kubernetes", headers=hdrs)
        subset = json.loads(r.data)["subsets"][0]
        assert subset["addresses"] == [{"ip": "127.0.0.1"}]
        assert subset["ports"][0]["port"] == ns_port
        r = pool.request("GET", f"https://127.0.0.1:{port}/apis/discovery.k8s.io/v1/namespaces/"
                         "default/endpointslices/kubernetes", headers=hdrs)
        assert json.loads(r.data)["ports"][0]["port"] == ns_port
        # ... and that port is not open in the root namespace.
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", ns_port), 0.5):
            pass
    finally:
        assert stop(proc) == 0

    proc = start(tmp_path, port, [])
    try:
        r = pool.request("GET", f"https://127.0.0.1:{port}/api/v1/namespaces/default/configmaps",
                         headers=hdrs)
        body = json.loads(r.data)
        assert [i["metadata"]["name"] for i in body["items"]] == ["kept"]
        assert int(body["metadata"]["resourceVersion"]) >= rv
        r = pool.request("POST", f"https://127.0.0.1:{port}/api/v1/namespaces/default/configmaps",
                         body=json.dumps({"metadata": {"name": "next"}}).encode(), headers=hdrs)
        assert int(json.loads(r.data)["metadata"]["resourceVersion"]) > rv
    finally:
        assert stop(proc) == 0
