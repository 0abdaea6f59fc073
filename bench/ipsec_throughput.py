"""TCP throughput across a node-to-node kernel VXLAN, plaintext vs encrypted by strongSwan
(kernel-libipsec: userspace ESP-in-UDP), in the same two netns.

Run as root:  .venv/bin/python bench/ipsec_throughput.py [--seconds 5] [--rounds 2]

Two "node" netns joined by a veth (192.168.99.1/.2), a kernel VXLAN device (MTU 1300, as
an encrypted one must fit ipsec0's 1400) with inner addresses 10.99.0.1/.2, one charon per
node. Each round measures the VXLAN with no SA (plaintext on the veth), then with the
CHILD SAs installed (ESP on the veth); iperf3, one TCP stream. Prints the best round of
each in Mbit/s and the encrypted/plaintext ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from antrea_ipsec.charon import Charon, CharonConfig
from antrea_ipsec.sa import Peer, SAManager

PSK = "antrea-hn-bench-psk"
NODES = (("a", "192.168.99.1", "10.99.0.1"), ("b", "192.168.99.2", "10.99.0.2"))


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def iperf(client_ns: str, server: str, seconds: int) -> float:
    out = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-J", "-c", server,
                          "-p", "5299", "-t", str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 60)
    result = json.loads(out.stdout)
    if "error" in result:
        raise RuntimeError(f"iperf3: {result['error']}")
    return result["end"]["sum_received"]["bits_per_second"] / 1e6


def wait_installed(sa: SAManager, peer: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not sa.child_installed(peer):
        if time.monotonic() > deadline:
            raise RuntimeError(f"CHILD SA to {peer} not installed after {timeout}s")
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    tag = uuid.uuid4().hex[:6]
    state = Path(tempfile.mkdtemp(prefix=f"hn-bench-{tag}-", dir="/tmp"))
    ns = {key: f"antrea-hn-{tag}-{key}" for key, _, _ in NODES}
    addr = {key: (node_ip, inner) for key, node_ip, inner in NODES}
    charons: dict[str, Charon] = {}
    created: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for key in ns:
            ip("netns", "add", ns[key])
            created.append(ns[key])
            ip("-n", ns[key], "link", "set", "lo", "up")
        ip("link", "add", "underlay", "netns", ns["a"], "type", "veth",
           "peer", "name", "underlay", "netns", ns["b"])
        for key, other in (("a", "b"), ("b", "a")):
            ip("-n", ns[key], "addr", "add", f"{addr[key][0]}/24", "dev", "underlay")
            ip("-n", ns[key], "link", "set", "underlay", "up")
            ip("-n", ns[key], "link", "add", "vxlan0", "mtu", "1300", "type", "vxlan", "id",
               "99", "local", addr[key][0], "remote", addr[other][0], "dstport", "4789")
            ip("-n", ns[key], "addr", "add", f"{addr[key][1]}/24", "dev", "vxlan0")
            ip("-n", ns[key], "link", "set", "vxlan0", "up")
            charons[key] = Charon(CharonConfig(ns[key], state / key))
            charons[key].start()
        sas = {key: SAManager(charons[key].cfg.vici_socket, ns[key]) for key in ns}
        for sa in sas.values():
            sa.load_psk(PSK)
        server = subprocess.Popen(["ip", "netns", "exec", ns["b"], "iperf3", "-s", "-p",
                                   "5299"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(1)
        algs: set[str] = set()
        plain: list[float] = []
        encrypted: list[float] = []
        for _ in range(args.rounds):
            plain.append(iperf(ns["a"], addr["b"][1], args.seconds))
            for key, other in (("a", "b"), ("b", "a")):
                sas[key].load_peer(Peer(ns[other], addr[key][0], addr[other][0]))
            wait_installed(sas["a"], ns["b"])
            wait_installed(sas["b"], ns["a"])
            algs = {c.encryption for ike in sas["a"].list_sas() for c in ike.children}
            encrypted.append(iperf(ns["a"], addr["b"][1], args.seconds))
            for key, other in (("a", "b"), ("b", "a")):
                sas[key].unload_peer(ns[other])
            time.sleep(0.5)
        best_plain, best_enc = max(plain), max(encrypted)
        print(f"VXLAN plaintext : {best_plain:8.0f} Mbit/s  (rounds: "
              f"{', '.join(f'{v:.0f}' for v in plain)})")
        print(f"VXLAN + IPsec   : {best_enc:8.0f} Mbit/s  (rounds: "
              f"{', '.join(f'{v:.0f}' for v in encrypted)})")
        print(f"ESP algorithm   : {', '.join(sorted(algs))}")
        print(f"ratio           : {best_enc / best_plain:8.2f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        for c in charons.values():
            c.stop()
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
