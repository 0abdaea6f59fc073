"""Lab API server throughput: pod creates with watchers attached.

Starts `python -m antrea_lab.apiserver` in a subprocess (temp state dir, HTTPS, token
auth), opens N watch streams on pods, creates M pods from a few client threads over
keep-alive HTTPS, and prints: create rate, time until every watcher has seen every pod,
list latency, and the server's RSS. Usage:

    .venv/bin/python bench/apiserver_throughput.py [--pods 5000] [--watchers 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import urllib3

TOKEN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--watchers", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="antrea-bench-apiserver-"))
    (tmp / "tokens.csv").write_text(f'{TOKEN},admin,uid-admin,"system:masters"\n')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "antrea_lab.apiserver", "--data-dir", str(tmp / "state"),
         "--pki-dir", str(tmp / "pki"), "--token-file", str(tmp / "tokens.csv"),
         "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"])
    base = f"https://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        deadline = time.monotonic() + 30
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
        ca = str(tmp / "pki" / "ca.crt")
        pool = urllib3.PoolManager(ca_certs=ca, maxsize=args.clients + 2)
        pool.request("POST", base + "/api/v1/namespaces", headers=headers,
                     body=json.dumps({"metadata": {"name": "bench"}}).encode())
        rv = json.loads(pool.request("GET", base + "/api/v1/namespaces/bench/pods",
                                     headers=headers).data)["metadata"]["resourceVersion"]

        seen = [0] * args.watchers
        caught_up = [0.0] * args.watchers
        ready = threading.Barrier(args.watchers + 1)

        def watcher(i: int) -> None:
            # Own pool: a half-read stream must never be handed back for reuse.
            own = urllib3.PoolManager(ca_certs=ca)
            r = own.request("GET", f"{base}/api/v1/namespaces/bench/pods?watch=1"
                             f"&resourceVersion={rv}", headers=headers, preload_content=False)
            ready.wait()
            buf = b""
            for chunk in r.stream(65536):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                seen[i] += sum(1 for line in lines if line.startswith(b'{"type":"ADDED"'))
                if seen[i] >= args.pods:
                    caught_up[i] = time.monotonic()
                    r.close()
                    own.clear()
                    return

        threads = [threading.Thread(target=watcher, args=(i,), daemon=True)
                   for i in range(args.watchers)]
        for t in threads:
            t.start()
        ready.wait()

        def creator(k: int) -> None:
            for n in range(k, args.pods, args.clients):
                body = {"metadata": {"name": f"pod-{n}", "labels": {"app": f"a{n % 10}"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
                r = pool.request("POST", base + "/api/v1/namespaces/bench/pods",
                                 headers=headers, body=json.dumps(body).encode())
                if r.status != 201:
                    print(f"create failed: {r.status} {r.data[:300]!r}", file=sys.stderr)
                    os._exit(1)

        cpu0 = cpu_seconds(proc.pid)
        start = time.monotonic()
        creators = [threading.Thread(target=creator, args=(k,)) for k in range(args.clients)]
        for t in creators:
            t.start()
        for t in creators:
            t.join()
        created = time.monotonic()
        for t in threads:
            t.join(120)
        cpu = cpu_seconds(proc.pid) - cpu0
        lists = []
        for _ in range(5):
            t0 = time.monotonic()
            r = pool.request("GET", base + "/api/v1/namespaces/bench/pods", headers=headers)
            lists.append(time.monotonic() - t0)
            assert len(json.loads(r.data)["items"]) == args.pods
        sel = time.monotonic()
        pool.request("GET", base + "/api/v1/namespaces/bench/pods?labelSelector=app%3Da3",
                     headers=headers)
        sel = time.monotonic() - sel
        elapsed = created - start
        print(f"pods created:          {args.pods} in {elapsed:.2f} s "
              f"({args.pods / elapsed:.0f}/s, {args.clients} client threads)")
        print(f"server CPU for that:   {cpu:.2f} s ({cpu / args.pods * 1e3:.2f} ms per create, "
              "incl. TLS and 10 watch streams; the rest is client time on 2 cores)")
        if all(caught_up):
            print(f"watchers caught up:    {args.watchers} watchers, all events "
                  f"{max(caught_up) - start:.2f} s after the first create")
        else:
            print(f"watchers caught up:    NO ({seen})")
        print(f"list {args.pods} pods:        median {sorted(lists)[2] * 1000:.0f} ms")
        print(f"list with selector:    {sel * 1000:.0f} ms")
        print(f"server RSS:            {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        db = tmp / "state" / "state.db"
        if db.exists():
            print(f"state after SIGTERM:   {db.stat().st_size / 1e6:.1f} MB sqlite "
                  f"(exit code {proc.returncode})")
        if os.environ.get("KEEP_BENCH_DIR") is None:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
