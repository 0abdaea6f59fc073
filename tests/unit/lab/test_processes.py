import subprocess
import sys
import time

import pytest

from antrea_lab import processes
from antrea_lab.labdir import LabDir, LabError, LabState

pytestmark = pytest.mark.unit


def _wait_exec(pid: int, marker: str) -> None:
    # Until the child has exec'd, /proc/<pid>/cmdline is still the parent's.
    deadline = time.monotonic() + 5
    while not processes.is_ours(pid, marker):
        assert time.monotonic() < deadline, "spawned process never showed its marker"
        time.sleep(0.02)


def test_spawned_process_is_stopped_by_pid_only_when_it_is_ours(tmp_path):
    marker = str(tmp_path / "marker-dir")
    pid = processes.spawn([sys.executable, "-c", "import time,sys; time.sleep(60)", marker],
                          tmp_path / "logs" / "sleeper.log", tmp_path / "pids" / "s.pid")
    assert processes.read_pid(tmp_path / "pids" / "s.pid") == pid
    _wait_exec(pid, marker)
    assert not processes.stop(pid, "some-other-lab")  # not ours: left alone
    assert processes.is_ours(pid, marker)
    assert processes.stop(pid, marker, timeout=5)
    assert not processes.is_ours(pid, marker)


def test_stop_escalates_to_sigkill(tmp_path):
    code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    marker = "stubborn-" + tmp_path.name
    pid = processes.spawn([sys.executable, "-c", code, marker], tmp_path / "l.log",
                          tmp_path / "p.pid")
    _wait_exec(pid, marker)
    time.sleep(0.3)  # let it install the handler
    start = time.monotonic()
    assert processes.stop(pid, marker, timeout=0.5)
    assert time.monotonic() - start < 5
    assert not processes.is_ours(pid, marker)


def test_lab_state_round_trips_and_names_are_checked(tmp_path):
    lab = LabDir("t1", root=tmp_path)
    assert lab.load() is None
    state = LabState(name="t1", api_port=1234, nodes=["node1"], pids={"apiserver": 42})
    lab.save(state)
    assert lab.load() == state
    assert lab.netns("node1") == "antrea-t1-node1"
    assert lab.pod_netns("0f1e2d3c-4b5a-6978-8899-aabbccddeeff") == "antrea-t1-pod-0f1e2d3c4b5a"
    with pytest.raises(LabError, match="lab name"):
        LabDir("Bad_Name")


def test_cli_version_and_help_run_without_root():
    out = subprocess.run([sys.executable, "-m", "antrea_lab.cli", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("antrea-lab ")


def test_a_process_in_the_middle_of_exec_is_still_ours():
    # `ip netns exec` execs twice; /proc/<pid>/cmdline reads empty during each exec.
    # A chain of 2,000 execs, every link carrying the marker, polled without pause:
    # no poll may call it gone while it runs.
    marker = "exec-chain-marker"
    link = f'if [ "$1" -gt 0 ]; then exec /bin/dash -c "$0" "$0" "$(($1-1))"; fi # {marker}'
    proc = subprocess.Popen(["/bin/dash", "-c", link, link, "2000"])
    polls = misses = 0
    while proc.poll() is None:
        polls += 1
        if not processes.is_ours(proc.pid, marker) and proc.poll() is None:
            # exited between the check and poll() is fine; alive and "not ours" is not
            misses += 1 if processes.proc_state(proc.pid) not in ("", "Z") else 0
    assert polls > 100
    assert misses == 0
