"""Packet captures in lab namespaces: what crossed a wire, for tests and benchmarks.

``with capture(netns, path) as pcap:`` runs tcpdump there while the block runs; once the
block has ended, ``pcap.count("udp port 6081")`` and friends read the file back through
BPF filters, so one capture answers several questions.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SETTLE = 0.5  # after the block: the last replies are still on their way


class CaptureError(RuntimeError):
    """tcpdump did not start or its file could not be read."""


@dataclass(frozen=True)
class Pcap:
    path: Path

    def lines(self, bpf: str = "", *options: str) -> list[str]:
        """tcpdump's one-line summaries of the packets matching ``bpf``."""
        out = subprocess.run(["tcpdump", "-nn", "-r", str(self.path), *options,
                              *([bpf] if bpf else [])],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise CaptureError(f"tcpdump -r {self.path}: {out.stderr.strip()}")
        return [line for line in out.stdout.splitlines() if line.strip()]

    def count(self, bpf: str = "") -> int:
        return len(self.lines(bpf))

    def udp_payload_bytes(self, bpf: str) -> int:
        """The summed UDP payload of the matching packets ("... UDP, length N")."""
        return sum(int(line.rsplit("length", 1)[1]) for line in self.lines(bpf)
                   if "length" in line)


@contextmanager
def capture(netns: str, path: Path, interface: str = "any", bpf: str = "") -> Iterator[Pcap]:
    """Capture on ``interface`` in ``netns`` into ``path`` while the block runs."""
    # --immediate-mode: without it packets still in the kernel ring when tcpdump is
    # stopped are lost (measured: 0 written of 4 received).
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "tcpdump", "-nn", "-i", interface, "--immediate-mode",
         "-U", "-B", "16384", "-w", str(path), *([bpf] if bpf else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(proc)
        yield Pcap(path)
        time.sleep(SETTLE)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen[str]) -> None:
    """tcpdump says "listening on …" once the socket is attached (or exits)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            return
    raise CaptureError(f"tcpdump exited with {proc.wait()} before capturing")
