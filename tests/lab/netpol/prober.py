"""Probe the whole matrix at once from inside the pods' network namespaces.

One long-lived thread per source pod enters that pod's netns (setns applies to the
calling thread only) and keeps it; each round every thread fires all of its probes
concurrently with the lab workload's own probe code, so a round of 9 x 8 pairs x 4
(protocol, port) costs about one probe timeout, with no process start per round.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from antrea_lab.probe import PodEndpoint
from antrea_lab.workload import parse_target, probe_one
from netpol.model import Combo
from netpol.truthtable import TruthTable

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _enter_netns(netns: str) -> None:
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _target(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


Probe = tuple[Combo, str, str]  # (combo, src key, dst key)


@dataclass
class Round:
    """One full-matrix probe: observed tables per combo, errors of failed cells."""

    started: float
    finished: float
    observed: dict[Combo, TruthTable]
    errors: dict[Probe, str] = field(default_factory=dict)
    rtt_ms: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.finished - self.started


class MatrixProber:
    """Threads pinned to pod netns, reused across rounds; close() when done."""

    def __init__(self, timeout: float = 0.5) -> None:
        self.timeout = timeout
        self._workers: dict[str, ThreadPoolExecutor] = {}

    def _worker(self, netns: str) -> ThreadPoolExecutor:
        pool = self._workers.get(netns)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=1, initializer=_enter_netns,
                                      initargs=(netns,), thread_name_prefix=f"probe-{netns}")
            self._workers[netns] = pool
        return pool

    def _forget_others(self, keep: set[str]) -> None:
        # A recreated pod has a new netns; the thread sitting in the old one must go.
        for netns in set(self._workers) - keep:
            self._workers.pop(netns).shutdown(wait=False)

    def probe(self, pods: Sequence[PodEndpoint], combos: Sequence[Combo],
              timeout: float | None = None) -> Round:
        """Every pod probes every other pod on every combo; self pairs stay unprobed."""
        timeout = timeout or self.timeout
        keys = [p.key for p in pods]
        observed = {combo: TruthTable(keys) for combo in combos}
        result = Round(time.monotonic(), 0.0, observed)
        self._forget_others({p.netns for p in pods})
        futures: list[tuple[PodEndpoint, list[Probe], Future[list[dict]]]] = []
        for src in pods:
            plan: list[Probe] = []
            targets: list[tuple[str, str]] = []
            for combo in combos:
                for dst in pods:
                    if dst.key != src.key:
                        plan.append((combo, src.key, dst.key))
                        targets.append((combo[0], _target(dst.ip, combo[1])))
            fut = self._worker(src.netns).submit(self._run, targets, timeout)
            futures.append((src, plan, fut))
        for src, plan, fut in futures:
            try:
                rows = fut.result(timeout=timeout * 4 + 30)
            except Exception as exc:  # netns gone, setns refused: every cell of src fails
                rows = [{"ok": False, "error": f"prober in {src.netns}: {exc}"}] * len(plan)
            for (combo, s, d), row in zip(plan, rows, strict=True):
                observed[combo].set(s, d, bool(row["ok"]))
                if row["ok"]:
                    if row.get("rtt_ms") is not None:
                        result.rtt_ms.append(row["rtt_ms"])
                else:
                    result.errors[(combo, s, d)] = row.get("error") or "unreachable"
        result.finished = time.monotonic()
        return result

    @staticmethod
    def _run(targets: list[tuple[str, str]], timeout: float) -> list[dict]:
        async def all_probes() -> list[dict]:
            return list(await asyncio.gather(*(
                probe_one(parse_target(text), proto, timeout)
                for proto, text in targets)))
        return asyncio.run(all_probes())

    def close(self) -> None:
        self._forget_others(set())
