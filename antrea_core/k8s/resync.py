"""Level-triggered re-syncs: recompute everything whenever something changed.

Components whose state is small enough to recompute as a whole (AntreaProxy's Services,
Egress plans, Egress IP allocation) set a `dirty` event from their informer handlers and
run `run_coalesced` on a thread of their own: one sync per burst of events, a retry
after a failure, and optionally a sync when a deadline passes with no event at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


def run_coalesced(sync: Callable[[], object], *, stop: threading.Event,
                  dirty: threading.Event, what: str, logger: logging.Logger,
                  coalesce: float, retry: float,
                  deadline: Callable[[], float | None] = lambda: None) -> None:
    """Call `sync` each time `dirty` is set (or `deadline()` seconds pass without it),
    after waiting `coalesce` seconds for the rest of the burst, until `stop` is set.
    A sync that raises is logged and tried again `retry` seconds later."""
    while not stop.is_set():
        dirty.wait(deadline())
        if stop.is_set():
            return
        stop.wait(coalesce)
        dirty.clear()
        try:
            sync()
        except Exception:
            logger.exception("%s failed; retrying in %.1fs", what, retry)
            if stop.wait(retry):
                return
            dirty.set()
