"""Write-behind persistence of the store in SQLite (WAL, synchronous=NORMAL).

Writes are recorded synchronously on the event loop into a pending dict (last version of
a key wins) and flushed in batches by one worker thread, so persistence never sits in
the request path. `close()` flushes everything: a clean SIGTERM loses nothing; a crash
loses at most the last flush interval, which is acceptable for a lab server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger("antrea.lab.apiserver.persistence")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqlitePersistence:
    def __init__(self, path: Path, flush_interval: float = 0.05) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.flush_interval = flush_interval
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._db_lock = threading.Lock()
        self._pending: dict[str, bytes | None] = {}
        self._rv = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apiserver-db")
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    # --- reading at start-up -----------------------------------------------------------

    def stored_rv(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name='rv'").fetchone()
        return int(row[0]) if row else 0

    def rows(self) -> Iterator[tuple[str, bytes]]:
        yield from self._db.execute("SELECT key, data FROM objects")

    # --- writing -----------------------------------------------------------------------

    def record(self, key: str, raw: bytes | None, rv: int) -> None:
        self._pending[key] = raw
        self._rv = rv
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        self._wake = asyncio.Event()
        if self._pending:
            self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def _flusher(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            # Gather a batch: later writes during the sleep join this flush.
            await asyncio.sleep(self.flush_interval)
            self._wake.clear()
            batch, rv = self._take()
            if batch:
                await loop.run_in_executor(self._executor, self._write, batch, rv)

    def _take(self) -> tuple[dict[str, bytes | None], int]:
        batch, self._pending = self._pending, {}
        return batch, self._rv

    def _write(self, batch: dict[str, bytes | None], rv: int) -> None:
        with self._db_lock:
            cur = self._db.cursor()
            cur.executemany("INSERT OR REPLACE INTO objects (key, data) VALUES (?, ?)",
                            [(k, v) for k, v in batch.items() if v is not None])
            cur.executemany("DELETE FROM objects WHERE key = ?",
                            [(k,) for k, v in batch.items() if v is None])
            cur.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('rv', ?)", (str(rv),))
            self._db.commit()
        log.debug("flushed objects=%d rv=%d", len(batch), rv)

    def flush_now(self) -> None:
        """Synchronous flush (shutdown, tests)."""
        batch, rv = self._take()
        if batch or rv:
            self._write(batch, rv)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Queued behind any in-flight batch on the single worker thread.
        batch, rv = self._take()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch, rv)
        self._executor.shutdown(wait=True)
        with self._db_lock:
            self._db.close()
        log.info("state flushed path=%s", self.path)
