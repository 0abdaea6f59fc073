"""Per-pod serialised work on a thread pool, with delayed re-queues.

A pod's syncs never overlap: while one runs, further requests for the same uid only mark
it dirty, and it runs once more afterwards. Requests with a delay (back-off, periodic
resync) wait on a single timer thread.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("antrea.lab.kubelet.workers")


class PodWorkers:
    def __init__(self, sync: Callable[[str], None], workers: int = 4) -> None:
        self._sync = sync
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pod-worker")
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: list[tuple[float, str]] = []
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._timer = threading.Thread(target=self._timer_loop, name="pod-timers", daemon=True)
        self._timer.start()

    def enqueue(self, uid: str, delay: float = 0.0) -> None:
        with self._lock:
            if self._stopped:
                return
            if delay > 0:
                heapq.heappush(self._timers, (time.monotonic() + delay, uid))
                self._wake.notify()
                return
            if uid in self._active:
                self._dirty.add(uid)
                return
            self._active.add(uid)
        self._pool.submit(self._run, uid)

    def _run(self, uid: str) -> None:
        while True:
            try:
                self._sync(uid)
            except Exception:
                log.exception("pod sync failed uid=%s", uid)
            with self._lock:
                if uid in self._dirty and not self._stopped:
                    self._dirty.discard(uid)
                    continue
                self._active.discard(uid)
                return

    def _timer_loop(self) -> None:
        with self._lock:
            while not self._stopped:
                now = time.monotonic()
                due = []
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[1])
                if due:
                    self._lock.release()
                    try:
                        for uid in dict.fromkeys(due):
                            self.enqueue(uid)
                    finally:
                        self._lock.acquire()
                    continue
                timeout = self._timers[0][0] - now if self._timers else None
                self._wake.wait(timeout)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._active)

    def stop(self, wait: bool = True) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify_all()
        self._pool.shutdown(wait=wait, cancel_futures=True)
