"""The plugin seam: shipped plugins found through their entry points, and a third-party
plugin installed with pip (into a private target dir) whose hooks the agent calls."""

import subprocess
import sys
from pathlib import Path

import pytest
from stevedore import ExtensionManager

from antrea_core.agent.openflow.flows import Flow
from antrea_core.agent.openflow.pipeline import Pipeline, PipelineLayout, Stage, TableSpec
from antrea_core.plugins import loading
from antrea_core.plugins.context import AgentContext, PodInterface

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "docs" / "examples" / "antrea-plugin-example"


@pytest.fixture
def example_installed(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True,
    )
    # A running process caches entry points per group (stevedore); an agent is started
    # after its plugins are installed, so only this in-process test must forget them.
    sys.path.insert(0, str(target))
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    yield target
    sys.path.remove(str(target))
    ExtensionManager.ENTRY_POINT_CACHE.clear()
    for mod in [m for m in sys.modules if m.startswith("antrea_example_plugin")]:
        del sys.modules[mod]


def test_shipped_feature_plugins_are_discovered():
    installed = loading.installed_features()
    for feature, dist in loading.SHIPPED_FEATURES.items():
        assert installed[feature].distribution == dist


def test_every_tunnel_type_has_a_driver_with_its_overhead():
    overheads = {t: loading.load_tunnel_driver(t).overhead(ipv6=False)
                 for t in ("geneve", "vxlan", "gre", "stt")}
    assert overheads["geneve"] == overheads["vxlan"] == 50
    assert overheads["gre"] == 42  # base header + key (key=flow)
    assert loading.load_tunnel_driver("geneve").overhead(ipv6=True) == 70


def test_unknown_tunnel_type_lists_installed_drivers():
    with pytest.raises(loading.PluginError, match="installed: geneve, gre, stt, vxlan"):
        loading.load_tunnel_driver("wireguard")


def test_enabled_but_missing_shipped_feature_names_the_distribution(monkeypatch):
    monkeypatch.setitem(loading.SHIPPED_FEATURES, "Multicast", "antrea-plugin-multicast")
    with pytest.raises(loading.PluginError, match="pip install antrea-plugin-multicast"):
        loading.load_agent_plugins({"Multicast"}, tunnel_type=None)


def test_stt_on_the_userspace_datapath_is_refused_at_start_up():
    class Config:
        ovs_datapath_type = "netdev"

    plugins = loading.load_agent_plugins(set(), tunnel_type="stt")
    with pytest.raises(loading.PluginError, match="STT support: use geneve, vxlan or gre"):
        loading.validate_config(plugins, Config())
    plugins = loading.load_agent_plugins(set(), tunnel_type="geneve")
    loading.validate_config(plugins, Config())  # accepted


def test_pip_installed_third_party_plugin_hooks_are_called(example_installed):
    assert loading.installed_features()["PacketCounter"].distribution == "antrea-plugin-example"
    plugins = loading.load_agent_plugins({"PacketCounter"}, tunnel_type="geneve")
    plugin = plugins.features["PacketCounter"]
    assert type(plugin).__module__ == "antrea_example_plugin"

    core = [TableSpec("PipelineRootClassifier", Stage.START, Pipeline.ROOT),
            TableSpec("Classifier", Stage.CLASSIFIER), TableSpec("Output", Stage.OUTPUT)]
    declared = [t for result in plugins.hook.antrea_pipeline_tables() for t in result]
    layout = PipelineLayout.build(core + declared)
    assert layout.table_id("PacketCounter") == layout.table_id("Classifier") + 1

    ctx = AgentContext(node_name="node1", config=None, layout=layout)
    plugins.hook.antrea_agent_started.call_historic(kwargs={"context": ctx})
    assert plugin.started
    pod = PodInterface("ns", "web", "c1", "web-1a2b", ("10.244.1.5",), "aa:bb:cc:00:00:01", 7)
    plugins.hook.antrea_pod_added(pod=pod, context=ctx)
    replayed = [f for r in plugins.hook.antrea_replay_flows(layout=layout, context=ctx)
                for f in r]
    assert replayed == [Flow("PacketCounter", 100, {"in_port": 7}, goto="__next__")]
    plugins.hook.antrea_pod_removed(pod=pod, context=ctx)
    assert not [f for r in plugins.hook.antrea_replay_flows(layout=layout, context=ctx)
                for f in r]


def test_agent_config_enables_an_installed_third_party_feature(example_installed, tmp_path):
    from antrea_core.agent.main import prepare

    conf = tmp_path / "antrea-agent.conf"
    conf.write_text("featureGates:\n  PacketCounter: true\n")
    _config, plugins, layout = prepare(conf)
    assert "PacketCounter" in plugins.features
    assert layout.table_id("PacketCounter") < layout.table_id("L3Forwarding")
    conf.write_text("featureGates:\n  PacketCounter: false\n")
    _config, plugins, layout = prepare(conf)
    assert "PacketCounter" not in plugins.features
    assert "PacketCounter" not in layout


def test_gate_of_a_plugin_that_is_not_installed_is_an_unknown_key(tmp_path):
    from antrea_core.agent.main import prepare
    from antrea_core.config.loading import ConfigError

    conf = tmp_path / "antrea-agent.conf"
    conf.write_text("featureGates:\n  PacketCounter: true\n")
    with pytest.raises(ConfigError, match=r'featureGates\.PacketCounter: unknown feature gate'):
        prepare(conf)


def test_network_policy_only_mode_is_refused_at_start_up_naming_the_key(tmp_path):
    from antrea_core.agent.main import prepare
    from antrea_core.config.loading import ConfigError

    conf = tmp_path / "antrea-agent.conf"
    conf.write_text("trafficEncapMode: networkPolicyOnly\n")
    with pytest.raises(ConfigError, match=r"antrea-agent.conf: trafficEncapMode: "
                                          r"networkPolicyOnly .* not implemented"):
        prepare(conf)
    conf.write_text("trafficEncapMode: noEncap\n")
    assert prepare(conf)[0].traffic_encap_mode == "noEncap"
