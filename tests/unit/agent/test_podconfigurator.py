"""The CNI handler: step order, rollback at every step, DEL idempotence, CHECK."""

from __future__ import annotations

import pytest
from agent_fakes import Rig, cni_request

from antrea_core.agent.bridge.interface_store import KEY_CONTAINER_ID, KEY_IPS
from antrea_core.agent.cniserver.errors import (
    CHECK_FAILURE,
    INTERFACE_FAILURE,
    INTERNAL_ERROR,
    INVALID_ENVIRONMENT,
    IPAM_FAILURE,
    UNKNOWN_CONTAINER,
    CNIError,
)
from antrea_core.agent.networkpolicy import agentplugin
from antrea_core.agent.podnet.interface import host_interface_name
from antrea_core.apis.controlplane import (
    AppliedToGroup,
    Direction,
    GroupMember,
    NetworkPolicy,
    PodReference,
    PolicyReference,
    PolicyType,
)
from antrea_core.plugins.context import AgentContext, PodInterface
from antrea_core.plugins.hookspecs import hookimpl

pytestmark = pytest.mark.unit

ADD_STEPS = ["ipam.allocate", "veths.setup", "ports.add", "store.add", "flows.install",
             "plugin.cni_add", "plugin.pod_added"]
HOST = host_interface_name("default", "web")


def test_add_runs_every_step_in_order_and_returns_the_cni_result(rig: Rig):
    result = rig.configurator.add(cni_request())

    assert rig.rec.calls == ADD_STEPS
    assert result["ips"] == [{"address": "10.0.0.2/24", "gateway": "10.0.0.1",
                              "interface": 1}]
    assert result["interfaces"][0]["name"] == HOST
    assert result["interfaces"][1] == {"name": "eth0", "mac": "0a:00:00:00:00:02",
                                       "sandbox": "/run/netns/p1"}
    assert result["dns"] == {"nameservers": ["10.96.0.10"]}  # amended by the plugin
    spec = rig.veths.live[HOST]
    assert spec.mtu == 1450 and spec.disable_tx_checksum and spec.ifname == "eth0"
    ids = rig.ports.ports[HOST].external_ids
    assert ids[KEY_CONTAINER_ID] == "c1" and ids[KEY_IPS] == "10.0.0.2"
    entry = rig.store.get_container("c1")
    assert entry is not None and entry.ofport == 10 and entry.mac == "0a:00:00:00:00:02"
    pod = rig.flows.installed["c1"]
    assert (pod.ofport, pod.ips, pod.mac) == (10, ("10.0.0.2",), "0a:00:00:00:00:02")


# step that fails -> (CNI code, step named in the error, expected undo calls in order)
ROLLBACKS = {
    "ipam.allocate": (IPAM_FAILURE, "IPAM", []),
    "veths.setup": (INTERFACE_FAILURE, "pod interface", ["ipam.release"]),
    "ports.add": (INTERFACE_FAILURE, "OVS port", ["veths.teardown", "ipam.release"]),
    "store.add": (INTERNAL_ERROR, "interface store",
                  ["ports.delete", "veths.teardown", "ipam.release"]),
    # antrea_pod_attaching ran before the flows: plugins hear antrea_pod_removed.
    "flows.install": (INTERNAL_ERROR, "pod flows",
                      ["plugin.pod_removed", "store.delete", "ports.delete", "veths.teardown",
                       "ipam.release"]),
    "plugin.cni_add": (INTERNAL_ERROR, "plugin recorder (antrea_cni_add)",
                       ["plugin.cni_del", "flows.uninstall", "plugin.pod_removed",
                        "store.delete", "ports.delete", "veths.teardown", "ipam.release"]),
    "plugin.pod_added": (INTERNAL_ERROR, "plugin recorder (antrea_pod_added)",
                         ["plugin.cni_del", "flows.uninstall", "plugin.pod_removed",
                          "store.delete", "ports.delete", "veths.teardown",
                          "ipam.release"]),
}


@pytest.mark.parametrize("failing", list(ROLLBACKS))
def test_failed_add_undoes_the_steps_done_in_reverse_order_and_names_the_step(
        rig: Rig, failing: str):
    code, step, undo = ROLLBACKS[failing]
    rig.rec.fail.add(failing)

    with pytest.raises(CNIError) as info:
        rig.configurator.add(cni_request())

    done = ADD_STEPS[:ADD_STEPS.index(failing) + 1]
    assert rig.rec.calls == done + undo
    assert info.value.code == code
    assert info.value.msg == f"CNI ADD failed at step {step}"
    assert f"injected failure in {failing}" in info.value.details
    # Nothing is left behind.
    assert rig.ipam.allocs == {} and rig.veths.live == {} and rig.ports.ports == {}
    assert len(rig.store) == 0 and rig.flows.installed == {}


def test_a_failing_undo_is_reported_but_does_not_stop_the_other_undos(rig: Rig):
    rig.rec.fail |= {"flows.install", "ports.delete"}

    with pytest.raises(CNIError) as info:
        rig.configurator.add(cni_request())

    assert rig.rec.calls[-4:] == ["store.delete", "ports.delete", "veths.teardown",
                                  "ipam.release"]
    assert "undo OVS port: injected failure in ports.delete" in info.value.details
    assert rig.ipam.allocs == {}


def test_add_without_pod_identity_is_refused_before_any_step(rig: Rig):
    with pytest.raises(CNIError) as info:
        rig.configurator.add(cni_request(name=""))
    assert info.value.code == INVALID_ENVIRONMENT and rig.rec.calls == []


def test_del_runs_the_add_steps_in_reverse(rig: Rig):
    rig.configurator.add(cni_request())
    rig.rec.calls.clear()

    rig.configurator.delete(cni_request("DEL"))

    # The pod's flows go before its policy: it is never reachable unprotected.
    assert rig.rec.calls == ["plugin.cni_del", "flows.uninstall", "plugin.pod_removed",
                             "ports.delete", "store.delete", "veths.teardown",
                             "ipam.release"]
    assert rig.ipam.allocs == {} and rig.ports.ports == {} and len(rig.store) == 0
    assert rig.veths.teardowns[-1] == {"host": HOST, "container_id": "c1", "ifname": "eth0"}


def test_del_is_idempotent_and_accepts_unknown_containers(rig: Rig):
    rig.configurator.add(cni_request())
    rig.configurator.delete(cni_request("DEL"))
    rig.rec.calls.clear()

    rig.configurator.delete(cni_request("DEL"))  # again
    rig.configurator.delete(cni_request("DEL", cid="never-seen", name="ghost"))
    rig.configurator.delete(cni_request("DEL", cid="no-args", name="", netns=""))

    # Only idempotent steps ran; no port/flow was touched for what the store does not know.
    assert "ports.delete" not in rig.rec.calls and "flows.uninstall" not in rig.rec.calls


def test_del_failure_names_the_step_and_a_retry_finishes_the_job(rig: Rig):
    rig.configurator.add(cni_request())
    rig.rec.fail.add("ports.delete")
    with pytest.raises(CNIError) as info:
        rig.configurator.delete(cni_request("DEL"))
    assert info.value.msg == "CNI DEL failed at step OVS port"
    assert rig.ipam.allocs  # not released yet: kubelet will retry

    rig.rec.fail.clear()
    rig.configurator.delete(cni_request("DEL"))
    assert rig.ipam.allocs == {} and rig.ports.ports == {} and len(rig.store) == 0


def test_del_of_an_old_sandbox_leaves_the_new_sandboxs_port_alone(rig: Rig):
    rig.configurator.add(cni_request(cid="old"))
    old_ofport = rig.ports.ports[HOST].ofport
    rig.rec.calls.clear()
    rig.configurator.add(cni_request(cid="new"))  # pod recreated before old's DEL
    assert "old" not in rig.flows.installed  # the old sandbox's flows went at once
    # The old port is deleted before the new veth (same name) is attached: a userspace
    # vswitchd would keep the port bound to the deleted device.
    assert rig.rec.calls.index("ports.delete") < rig.rec.calls.index("ports.add")
    assert rig.ports.ports[HOST].ofport != old_ofport

    rig.configurator.delete(cni_request("DEL", cid="old"))

    assert HOST in rig.ports.ports
    assert rig.ports.ports[HOST].external_ids[KEY_CONTAINER_ID] == "new"
    assert rig.store.get_container("new") is not None
    assert ("old", "eth0") not in rig.ipam.allocs and ("new", "eth0") in rig.ipam.allocs


def test_repeated_add_releases_the_previous_attachment_first(rig: Rig):
    rig.configurator.add(cni_request())
    result = rig.configurator.add(cni_request())
    assert list(rig.ipam.allocs) == [("c1", "eth0")]
    assert result["ips"][0]["address"] == "10.0.0.3/24"
    assert len(rig.store.containers()) == 1


def test_check_passes_for_an_attached_pod(rig: Rig):
    rig.configurator.add(cni_request())
    rig.configurator.check(cni_request("CHECK"))


def test_check_of_an_unknown_container_answers_code_3(rig: Rig):
    with pytest.raises(CNIError) as info:
        rig.configurator.check(cni_request("CHECK", cid="nope"))
    assert info.value.code == UNKNOWN_CONTAINER


def test_check_reports_a_missing_port_a_moved_ofport_and_a_broken_interface(rig: Rig):
    rig.configurator.add(cni_request())
    rig.veths.check_problem = "eth0 has MTU 1500, want 1450"
    rig.ports.ports[HOST].ofport = 99
    with pytest.raises(CNIError) as info:
        rig.configurator.check(cni_request("CHECK"))
    assert info.value.code == CHECK_FAILURE
    assert "ofport 99, recorded 10" in info.value.details
    assert "MTU 1500" in info.value.details

    del rig.ports.ports[HOST]
    with pytest.raises(CNIError) as info:
        rig.configurator.check(cni_request("CHECK"))
    assert f"OVS port {HOST} is missing" in info.value.details


# -- policy before traffic: antrea_pod_attaching ------------------------------------------
class AttachingPlugin:
    """Sees the pod before its flows exist; records what it saw."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.seen: list[tuple[int, bool]] = []  # (ofport, flows already installed?)

    @hookimpl
    def antrea_pod_attaching(self, pod: PodInterface, context: AgentContext) -> None:
        self.rig.rec("plugin.pod_attaching")
        self.seen.append((pod.ofport, pod.container_id in self.rig.flows.installed))


def test_pod_attaching_runs_with_the_ofport_before_the_pods_flows(rig: Rig):
    plugin = AttachingPlugin(rig)
    rig.configurator.pm.register(plugin, name="attaching")

    rig.configurator.add(cni_request())

    assert rig.rec.calls == ["ipam.allocate", "veths.setup", "ports.add", "store.add",
                             "plugin.pod_attaching", "flows.install", "plugin.cni_add",
                             "plugin.pod_added"]
    assert plugin.seen == [(10, False)]


def test_a_failing_pod_attaching_fails_the_add_before_any_flow(rig: Rig):
    rig.configurator.pm.register(AttachingPlugin(rig), name="attaching")
    rig.rec.fail.add("plugin.pod_attaching")

    with pytest.raises(CNIError) as info:
        rig.configurator.add(cni_request())

    assert info.value.msg == "CNI ADD failed at step plugin attaching (antrea_pod_attaching)"
    assert "flows.install" not in rig.rec.calls
    assert rig.rec.calls[-5:] == ["plugin.pod_removed", "store.delete", "ports.delete",
                                  "veths.teardown", "ipam.release"]
    assert rig.ports.ports == {} and rig.ipam.allocs == {}


def test_network_policy_isolates_a_new_pod_before_its_flows_make_it_reachable(rig: Rig):
    ctl = agentplugin.enable(rig.configurator.pm, "n1", None, ["10.0.0.1"])
    # The controller already sent the policy applied to the pod (scheduled, no IP yet).
    web = GroupMember(PodReference("default", "web"), (), "n1")
    ctl.replace_all([NetworkPolicy("p", PolicyReference("K8sNetworkPolicy", "default", "p",
                                                        "p"), (), ("atg",),
                                   (PolicyType.INGRESS,))],
                    [AppliedToGroup("atg", frozenset({web}))], [])
    isolated_at_install: list[set[tuple[str, int]]] = []
    install = rig.flows.install_pod_flows

    def install_checking(pod: PodInterface) -> None:
        isolated_at_install.append({(p.name, p.ofport) for p in ctl.isolated(Direction.IN)})
        install(pod)

    rig.flows.install_pod_flows = install_checking  # type: ignore[method-assign]

    rig.configurator.add(cni_request())
    assert isolated_at_install == [{("web", 10)}]

    rig.configurator.delete(cni_request("DEL"))
    assert ctl.isolated(Direction.IN) == frozenset()
