"""Informer initial sync with raw dicts vs the official client's typed models.

Starts the lab API server in a subprocess, creates N pods, then prints the time for
(1) an `antrea_core.k8s.informer.Informer` on pods to list and deliver every pod to a
handler (raw JSON dicts, paged), and (2) `CoreV1Api.list_pod_for_all_namespaces` (the
client's model objects, one request). Usage:

    .venv/bin/python bench/informer_list.py [--pods 20000]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import kubernetes
import urllib3

from antrea_core.k8s.clientconfig import api_client
from antrea_core.k8s.informer import Informer
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import PODS
from antrea_lab.apiserver.pki import write_kubeconfig

TOKEN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="antrea-bench-informer-"))
    (tmp / "tokens.csv").write_text(f'{TOKEN},admin,uid-admin,"system:masters"\n')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "antrea_lab.apiserver", "--data-dir", str(tmp / "state"),
         "--pki-dir", str(tmp / "pki"), "--token-file", str(tmp / "tokens.csv"),
         "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"])
    base = f"https://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                pool = urllib3.PoolManager(ca_certs=str(tmp / "pki" / "ca.crt"))
                if pool.request("GET", base + "/readyz", retries=False).status == 200:
                    break
            except (urllib3.exceptions.HTTPError, FileNotFoundError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not come up")
            time.sleep(0.1)
        pool = urllib3.PoolManager(ca_certs=str(tmp / "pki" / "ca.crt"),
                                   maxsize=args.clients + 2)
        pool.request("POST", base + "/api/v1/namespaces", headers=headers,
                     body=json.dumps({"metadata": {"name": "bench"}}).encode())

        def creator(k: int) -> None:
            for n in range(k, args.pods, args.clients):
                body = {"metadata": {"name": f"pod-{n}", "labels": {"app": f"a{n % 10}"}},
                        "spec": {"nodeName": f"node{n % 50}", "containers": [
                            {"name": "c", "image": "busybox:1.36",
                             "ports": [{"name": "http", "containerPort": 80}]}]}}
                pool.request("POST", base + "/api/v1/namespaces/bench/pods",
                             headers=headers, body=json.dumps(body).encode())

        start = time.monotonic()
        threads = [threading.Thread(target=creator, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"created {args.pods} pods in {time.monotonic() - start:.1f}s")
        kubeconfig = tmp / "kubeconfig"
        write_kubeconfig(kubeconfig, base, tmp / "pki" / "ca.crt", TOKEN, "admin")
        api = api_client(str(kubeconfig))

        class Count:
            n = 0

            def on_add(self, obj: dict) -> None:
                self.n += 1

            def on_update(self, old: dict, new: dict) -> None: ...

            def on_delete(self, obj: dict) -> None: ...

        counter = Count()
        informer = Informer(RawClient(api), PODS)
        informer.add_handler(counter)
        start = time.monotonic()
        informer.start()
        informer.wait_synced(600)
        raw_s = time.monotonic() - start
        informer.stop()
        print(f"informer (raw dicts, pages of 500): {counter.n} pods delivered in {raw_s:.2f}s")

        start = time.monotonic()
        typed = kubernetes.client.CoreV1Api(api).list_pod_for_all_namespaces()
        typed_s = time.monotonic() - start
        print(f"typed client list_pod_for_all_namespaces: {len(typed.items)} pods in "
              f"{typed_s:.2f}s ({typed_s / raw_s:.1f}x the informer)")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
