"""Wiring into the agent: pod hooks reach the controller; reconnects replay policy first."""

from __future__ import annotations

import pytest
from np_fakes import NODE, RecordingBridge, atg, member, policy

from antrea_core.agent.networkpolicy import agentplugin
from antrea_core.agent.openflow.connection import OFConnection, ReplayOrder
from antrea_core.agent.podconfigurator import call_hook
from antrea_core.plugins.context import AgentContext, PodInterface
from antrea_core.plugins.loading import new_plugin_manager

pytestmark = pytest.mark.unit

POD = PodInterface("default", "web-0", "cid0", "web0-veth", ("10.10.0.10",), "02:00:00:00:00:0a",
                   10)


class Conn(OFConnection):
    """The bridge's connection (never started): bundles go to the recording bridge; the
    datapath's own reconnect listener (pod flows) is already registered."""

    def __init__(self, bridge: RecordingBridge) -> None:
        super().__init__("/nonexistent.mgmt")
        self.calls: list[str] = []
        self.add_reconnect_listener(lambda _c: self.calls.append("pod flows"),
                                    order=ReplayOrder.FORWARDING)
        self.bundle = bridge.bundle  # type: ignore[method-assign]


class Bridge(RecordingBridge):
    def __init__(self) -> None:
        super().__init__()
        self.connection = Conn(self)

    @property
    def conn(self):  # type: ignore[override]
        return self.connection


def test_pod_hooks_feed_the_controller_and_a_second_enable_replaces_the_first():
    pm = new_plugin_manager()
    bridge = Bridge()
    ctl = agentplugin.enable(pm, NODE, bridge, ["10.10.0.1"])
    ctx = AgentContext(node_name=NODE, config=None, layout=None)
    call_hook(pm, "antrea_pod_added", pod=POD, context=ctx)
    ctl.replace_all([policy("p", ("web",))], [atg("web", member("web-0", "10.10.0.10"))], [])
    assert [f.match for f in bridge.table("IngressDefaultRule")] == [{"reg1": 10}]
    call_hook(pm, "antrea_pod_removed", pod=POD, context=ctx)
    assert bridge.table("IngressDefaultRule") == []
    # An agent restarted in the same process registers a fresh controller.
    again = agentplugin.enable(pm, NODE, bridge, ["10.10.0.1"])
    call_hook(pm, "antrea_pod_added", pod=POD, context=ctx)
    assert ("default", "web-0") in again._pods and ("default", "web-0") not in ctl._pods


def test_reconnect_replays_policy_before_pod_flows():
    pm = new_plugin_manager()
    bridge = Bridge()
    ctl = agentplugin.enable(pm, NODE, bridge, ["10.10.0.1"])
    ctl.replace_all([policy("p", ("web",))], [atg("web")], [])
    bridge.flows.clear()
    replayed_first: list[bool] = []
    bridge.connection.add_reconnect_listener(
        lambda _c: replayed_first.append(bool(bridge.table("IngressSecurityClassifier"))),
        order=ReplayOrder.FORWARDING)
    bridge.connection.run_reconnect_listeners()
    assert bridge.table("IngressSecurityClassifier")  # replayed
    assert bridge.connection.calls == ["pod flows"]
    assert replayed_first == [True]  # policy flows were back before pod flows


def test_without_a_bridge_policies_are_computed_only():
    ctl = agentplugin.enable(new_plugin_manager(), NODE, None, [])
    ctl.replace_all([policy("p", ("web",))], [atg("web")], [])
    assert ctl.flows()  # static flows at least; nothing to install them into
