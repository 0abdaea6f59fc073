"""The daemons' signal handling, in a child process (handlers belong to its main thread)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import signal, sys, threading, time
    from antrea_core.signals import stop_on_signals, wait_until_stopped

    stop = stop_on_signals()

    def other_thread():
        time.sleep(0.3)
        if sys.argv[1] == "usr1":
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            time.sleep(0.3)
        # The kernel may hand a process signal to any thread; this makes it this one.
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=other_thread, name="sender", daemon=True).start()
    if sys.argv[2] == "untimed":
        stop.wait()
    else:
        wait_until_stopped(stop)
    print("stopped", flush=True)
""")


def run_child(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True,
                          text=True, timeout=timeout)


def test_sigterm_taken_by_another_thread_still_stops_the_main_thread():
    done = run_child("term", "timed", timeout=10)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped\n"


def test_an_untimed_wait_would_miss_it():
    # Why wait_until_stopped exists: the same signal leaves an untimed wait parked.
    try:
        done = run_child("term", "untimed", timeout=3)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError(f"an untimed wait returned: {done.stdout!r} {done.stderr!r}")


def test_sigusr1_prints_every_threads_stack_and_keeps_running():
    done = run_child("usr1", "timed", timeout=10)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped\n"
    assert "other_thread" in done.stderr  # the sender thread's frame
    assert "wait_until_stopped" in done.stderr  # the main thread's frame
