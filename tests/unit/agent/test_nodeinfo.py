"""Reading this Node: podCIDRs, transport addresses, waiting for a podCIDR."""

from __future__ import annotations

import threading

import pytest

from antrea_core.agent.nodeinfo import KubeClusterView, NodeInfoError, node_info_from
from antrea_core.plugins.context import NodeInfo

pytestmark = pytest.mark.unit


def test_node_info_takes_pod_cidrs_and_internal_ips():
    info = node_info_from({
        "metadata": {"name": "n1", "labels": {"zone": "a"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00::/64"]},
        "status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                 {"type": "ExternalIP", "address": "1.2.3.4"},
                                 {"type": "InternalIP", "address": "192.168.77.11"}]},
    })
    assert info == NodeInfo(name="n1", ips=("192.168.77.11",),
                            pod_cidrs=("10.244.1.0/24", "fd00::/64"), labels={"zone": "a"})


def test_node_info_falls_back_to_pod_cidr_and_external_ips():
    info = node_info_from({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24"},
                           "status": {"addresses": [{"type": "ExternalIP",
                                                     "address": "1.2.3.4"}]}})
    assert info.pod_cidrs == ("10.0.0.0/24",) and info.ips == ("1.2.3.4",)


def test_a_node_without_pod_cidr_has_none():
    assert node_info_from({"metadata": {"name": "n1"}, "spec": {}}).pod_cidrs == ()


class ScriptedView(KubeClusterView):
    """read_node answers from a script instead of the API."""

    def __init__(self, answers: list[NodeInfo | Exception]) -> None:
        self.node_name = "n1"
        self.poll_interval = 0.01
        self.answers = answers

    def read_node(self) -> NodeInfo:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_wait_for_node_waits_for_registration_and_a_pod_cidr():
    ready = NodeInfo("n1", ("192.168.77.11",), ("10.244.1.0/24",))
    view = ScriptedView([NodeInfoError("Node n1 does not exist"),
                         NodeInfo("n1", (), ()), ready])
    assert view.wait_for_node(timeout=5) == ready


def test_wait_for_node_gives_up_at_the_timeout_or_when_stopped():
    view = ScriptedView([NodeInfo("n1", (), ())])
    with pytest.raises(NodeInfoError, match="no podCIDR yet"):
        view.wait_for_node(timeout=0.05)
    stop = threading.Event()
    stop.set()
    with pytest.raises(NodeInfoError, match="stopped"):
        view.wait_for_node(stop=stop)
