"""AntreaProxy on the connection's seams: its packet-ins only, its replay among the
feature flows; and its select groups hash the 5-tuple."""

from __future__ import annotations

from typing import Any

import pytest

from antrea_core.agent.openflow.bridge_client import assign_feature_ids, make_cookie
from antrea_core.agent.openflow.connection import OFConnection, PacketIn, ReplayOrder
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_proxy import serviceflows
from antrea_proxy.model import Endpoint, ServicePort
from antrea_proxy.plugin import Plugin
from antrea_proxy.proxier import FEATURE

pytestmark = pytest.mark.unit

IDS = assign_feature_ids([FEATURE])


class Bridge:
    def __init__(self) -> None:
        self.conn = OFConnection("/nonexistent.mgmt")

    def feature_id(self, feature: str) -> int:
        return IDS[feature]


class Proxier:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def handle_packet_in(self, pin: PacketIn) -> bool:
        self.calls.append(pin.cookie)
        return True

    def replay(self) -> None:
        self.calls.append("replay")


def pin(feature_id: int) -> PacketIn:
    return PacketIn(b"", 0, make_cookie(feature_id, 1), 1, b"x", {})


def test_proxy_gets_its_own_packet_ins_and_replays_between_policy_and_pods():
    plugin, bridge, proxier = Plugin(), Bridge(), Proxier()
    order: list[str] = []
    bridge.conn.add_reconnect_listener(lambda c: order.append("pods"),
                                       order=ReplayOrder.FORWARDING)
    bridge.conn.add_reconnect_listener(lambda c: order.append(f"policy {proxier.calls}"),
                                       order=ReplayOrder.POLICY)
    plugin._attach(bridge, proxier)  # type: ignore[arg-type]
    bridge.conn._deliver(pin(IDS["network-policy"]))
    bridge.conn._deliver(pin(IDS[FEATURE]))
    assert proxier.calls == [make_cookie(IDS[FEATURE], 1)]
    bridge.conn.run_reconnect_listeners()
    assert order == [f"policy {proxier.calls[:1]}", "pods"]
    assert proxier.calls[1:] == ["replay"]
    plugin.antrea_agent_stopping(context=None)  # detaches both
    bridge.conn._deliver(pin(IDS[FEATURE]))
    bridge.conn.run_reconnect_listeners()
    assert proxier.calls[1:] == ["replay"]


def test_service_groups_hash_the_five_tuple():
    layout = PipelineLayout.build([*core_tables(), *serviceflows.tables()])
    sp = ServicePort("default", "dns", "", "UDP", 53, ("10.96.0.10",),
                     endpoints=(Endpoint("10.0.0.2", 53, "n1"),
                                Endpoint("10.0.0.3", 53, "n1")), local_node="n1")
    group = serviceflows.group_for(0x1000, sp, sp.endpoints, layout)
    assert group.selection_method == "dp_hash" and not group.selection_fields
