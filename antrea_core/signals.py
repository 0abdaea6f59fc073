"""How the daemons (agent, controller, the lab's kubelet) react to signals."""

from __future__ import annotations

import faulthandler
import signal
import threading

# How long the main thread blocks at most before it runs pending signal handlers.
_WAKE_INTERVAL = 0.5


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """An event that SIGTERM or SIGINT sets; SIGUSR1 prints every thread's stack to
    stderr without stopping (what a stuck daemon is doing, as Go's SIGQUIT shows)."""
    stop = stop if stop is not None else threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    return stop


def wait_until_stopped(stop: threading.Event) -> None:
    """Block the main thread until `stop` is set, waking up regularly.

    Python runs signal handlers only in the main thread, between bytecodes. When the
    kernel delivers SIGTERM to another thread (any thread may take a process signal),
    a main thread parked in an untimed Event.wait() never returns to run the handler
    and the daemon ignores the signal for good; a timed wait bounds that to
    _WAKE_INTERVAL."""
    while not stop.wait(_WAKE_INTERVAL):
        pass
