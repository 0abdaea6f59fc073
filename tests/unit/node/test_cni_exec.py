"""The CNI executor against a fake plugin that records what it was given."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from antrea_lab.node.cni_exec import (
    Attachment,
    CNIError,
    CNIExecutor,
    CNITimeout,
    NoNetworkConfig,
    capability_args_for_pod,
    find_config_file,
    pod_ips,
)

pytestmark = pytest.mark.unit

FAKE_PLUGIN = """#!{python}
import json, os, sys, time
conf = json.load(sys.stdin)
name = os.path.basename(sys.argv[0])
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open(conf.get("record", os.devnull), "a") as f:
    f.write(json.dumps({{"plugin": name, "env": env, "stdin": conf}}) + "\\n")
cmd = env["CNI_COMMAND"]
behavior = conf.get("behavior", {{}}).get(cmd, "ok")
if cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}}))
    sys.exit(0)
if behavior == "hang":
    os.fork()  # the child must be killed too
    time.sleep(60)
if behavior == "error":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "try later",
                      "details": "from " + name}}))
    sys.exit(1)
if behavior == "garbage":
    sys.stderr.write("boom")
    sys.exit(3)
if cmd == "ADD":
    prev = conf.get("prevResult")
    if prev is None:
        result = {{"cniVersion": conf["cniVersion"],
                  "interfaces": [{{"name": "veth0"}},
                                 {{"name": env["CNI_IFNAME"], "sandbox": env["CNI_NETNS"]}}],
                  "ips": [{{"address": "fd00::5/64", "interface": 1}},
                          {{"address": "10.0.0.5/24", "interface": 1}}]}}
    else:
        result = dict(prev)
        result["seen"] = result.get("seen", []) + [name]
    print(json.dumps(result))
"""


def make_plugin(bin_dir: Path, name: str) -> None:
    path = bin_dir / name
    path.write_text(FAKE_PLUGIN.format(python=sys.executable))
    path.chmod(0o755)


@pytest.fixture
def env(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    conf_dir = tmp_path / "net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    for name in ("first", "second", "third"):
        make_plugin(bin_dir, name)
    record = tmp_path / "calls.jsonl"

    def write_conf(plugins: list[dict], name: str = "99-test.conflist", version="1.0.0"):
        for p in plugins:
            p.setdefault("record", str(record))
        (conf_dir / name).write_text(
            json.dumps({"cniVersion": version, "name": "testnet", "plugins": plugins})
        )

    def calls() -> list[dict]:
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]

    ex = CNIExecutor(conf_dir, [tmp_path / "nobin", bin_dir], tmp_path / "cache", timeout=5)
    return ex, write_conf, calls, tmp_path


def attachment(**kw) -> Attachment:
    return Attachment(
        container_id="c0ffee",
        netns="/run/netns/antrea-t-pod-1",
        pod_namespace="default",
        pod_name="web",
        pod_uid="uid-1",
        **kw,
    )


def test_add_runs_plugins_in_order_and_chains_prev_result(env):
    ex, write_conf, calls, _ = env
    write_conf([{"type": "first"}, {"type": "second"}, {"type": "third"}])
    result = ex.add(attachment())
    seen = calls()
    assert [c["plugin"] for c in seen] == ["first", "second", "third"]
    assert "prevResult" not in seen[0]["stdin"]
    assert seen[1]["stdin"]["prevResult"]["ips"][0]["address"] == "fd00::5/64"
    assert seen[2]["stdin"]["prevResult"]["seen"] == ["second"]
    assert result["seen"] == ["second", "third"]
    for c in seen:
        assert c["stdin"]["name"] == "testnet"
        assert c["stdin"]["cniVersion"] == "1.0.0"
        e = c["env"]
        assert e["CNI_COMMAND"] == "ADD"
        assert e["CNI_CONTAINERID"] == "c0ffee"
        assert e["CNI_NETNS"] == "/run/netns/antrea-t-pod-1"
        assert e["CNI_IFNAME"] == "eth0"
        assert "K8S_POD_NAME=web" in e["CNI_ARGS"].split(";")
        assert "K8S_POD_NAMESPACE=default" in e["CNI_ARGS"].split(";")
        assert "K8S_POD_UID=uid-1" in e["CNI_ARGS"].split(";")
        assert "K8S_POD_INFRA_CONTAINER_ID=c0ffee" in e["CNI_ARGS"].split(";")
        assert e["CNI_PATH"].endswith("/bin")
    assert pod_ips(result) == ["10.0.0.5", "fd00::5"]


def test_del_runs_in_reverse_with_cached_result_after_restart(env):
    ex, write_conf, calls, tmp = env
    write_conf([{"type": "first"}, {"type": "second"}])
    added = ex.add(attachment())
    # A new executor (kubelet restart) still finds the cached result.
    ex2 = CNIExecutor(ex.conf_dir, ex.bin_dirs, tmp / "cache")
    ex2.delete(attachment())
    dels = [c for c in calls() if c["env"]["CNI_COMMAND"] == "DEL"]
    assert [c["plugin"] for c in dels] == ["second", "first"]
    assert all(c["stdin"]["prevResult"] == added for c in dels)
    assert ex2.cache.find("c0ffee") is None


def test_del_uses_config_of_the_add_when_conf_dir_changed(env):
    ex, write_conf, calls, _ = env
    write_conf([{"type": "first"}, {"type": "second"}])
    ex.add(attachment())
    (ex.conf_dir / "99-test.conflist").unlink()
    write_conf([{"type": "third"}], name="05-new.conflist")
    ex.delete(attachment())
    dels = [c["plugin"] for c in calls() if c["env"]["CNI_COMMAND"] == "DEL"]
    assert dels == ["second", "first"]


def test_del_without_cache_has_no_prev_result(env):
    ex, write_conf, calls, _ = env
    write_conf([{"type": "first"}])
    ex.delete(attachment())
    (call,) = calls()
    assert call["env"]["CNI_COMMAND"] == "DEL"
    assert "prevResult" not in call["stdin"]


def test_check_runs_in_order_with_cached_result(env):
    ex, write_conf, calls, _ = env
    write_conf([{"type": "first"}, {"type": "second"}])
    added = ex.add(attachment())
    ex.check(attachment())
    checks = [c for c in calls() if c["env"]["CNI_COMMAND"] == "CHECK"]
    assert [c["plugin"] for c in checks] == ["first", "second"]
    assert checks[0]["stdin"]["prevResult"] == added


def test_plugin_error_is_parsed_and_stops_the_chain(env):
    ex, write_conf, calls, _ = env
    write_conf([{"type": "first"}, {"type": "second", "behavior": {"ADD": "error"}},
                {"type": "third"}])
    with pytest.raises(CNIError) as info:
        ex.add(attachment())
    err = info.value
    assert (err.code, err.msg, err.details) == (11, "try later", "from second")
    assert err.plugin == "second" and err.command == "ADD"
    assert "try later" in str(err)
    assert [c["plugin"] for c in calls()] == ["first", "second"]
    assert ex.cache.find("c0ffee") is None


def test_non_json_failure_carries_stderr(env):
    ex, write_conf, _, _ = env
    write_conf([{"type": "first", "behavior": {"ADD": "garbage"}}])
    with pytest.raises(CNIError) as info:
        ex.add(attachment())
    assert "exit status 3" in info.value.msg
    assert info.value.details == "boom"


def test_missing_plugin_binary_is_code_50(env):
    ex, write_conf, _, _ = env
    write_conf([{"type": "nosuchplugin"}])
    with pytest.raises(CNIError) as info:
        ex.add(attachment())
    assert info.value.code == 50


def test_hanging_plugin_and_its_children_are_killed(env):
    ex, write_conf, _, _ = env
    ex.timeout = 1.0
    write_conf([{"type": "first", "behavior": {"ADD": "hang"}}])
    start = time.monotonic()
    with pytest.raises(CNITimeout):
        ex.add(attachment())
    # communicate() returning proves every holder of the stdout pipe (the fork too) died.
    assert time.monotonic() - start < 5


def test_capabilities_only_for_plugins_declaring_them(env):
    ex, write_conf, calls, _ = env
    write_conf([
        {"type": "first"},
        {"type": "second", "capabilities": {"portMappings": True}},
        {"type": "third", "capabilities": {"bandwidth": True, "portMappings": False}},
    ])
    pod = {
        "metadata": {"annotations": {"kubernetes.io/ingress-bandwidth": "10M",
                                     "kubernetes.io/egress-bandwidth": "1Mi"}},
        "spec": {"containers": [{"ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
            {"containerPort": 81},
        ]}]},
    }
    ex.add(attachment(capability_args=capability_args_for_pod(pod)))
    first, second, third = calls()
    assert "runtimeConfig" not in first["stdin"]
    assert second["stdin"]["runtimeConfig"] == {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
    ]}
    bw = third["stdin"]["runtimeConfig"]["bandwidth"]
    assert "portMappings" not in third["stdin"]["runtimeConfig"]
    assert bw["ingressRate"] == 10_000_000
    assert bw["egressRate"] == 2**20
    assert bw["ingressBurst"] > 0


def test_lexically_first_config_wins_and_conf_is_wrapped(env):
    ex, write_conf, calls, _ = env
    write_conf([{"type": "second"}], name="20-b.conflist")
    (ex.conf_dir / "10-a.conf").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": "single", "type": "first",
        "record": str(env[3] / "calls.jsonl"),
    }))
    (ex.conf_dir / "00-ignored.txt").write_text("{}")
    assert find_config_file(ex.conf_dir).name == "10-a.conf"
    ex.add(attachment())
    (call,) = calls()
    assert call["plugin"] == "first"
    assert call["stdin"]["name"] == "single"
    assert call["stdin"]["cniVersion"] == "0.4.0"


def test_no_config_means_network_not_ready(env):
    ex, _, _, _ = env
    assert not ex.network_ready()
    with pytest.raises(NoNetworkConfig):
        ex.add(attachment())


def test_version_reports_supported_versions(env):
    ex, _, _, _ = env
    assert "1.0.0" in ex.version("first")["supportedVersions"]


def test_status_and_gc_only_for_cni_1_1(env):
    ex, write_conf, calls, _ = env
    write_conf([{"type": "first"}])
    ex.add(attachment())
    ex.status()
    ex.gc([])
    assert [c["env"]["CNI_COMMAND"] for c in calls()] == ["ADD"]
    assert ex.cache.find("c0ffee") is None  # stale cache entry collected anyway
    write_conf([{"type": "first"}, {"type": "second"}], version="1.1.0")
    ex.status()
    ex.gc([attachment()])
    cmds = [(c["plugin"], c["env"]["CNI_COMMAND"]) for c in calls()[1:]]
    assert cmds == [("first", "STATUS"), ("second", "STATUS"), ("first", "GC"), ("second", "GC")]
    gc_call = calls()[-1]
    assert gc_call["stdin"]["cni.dev/valid-attachments"] == [
        {"containerID": "c0ffee", "ifname": "eth0"}
    ]
