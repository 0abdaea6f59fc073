from pathlib import Path

import pytest

from antrea_core.config.agent import AgentConfig
from antrea_core.config.controller import ControllerConfig
from antrea_core.config.loading import ConfigError, load_agent_config, load_controller_config

pytestmark = pytest.mark.unit


def write_agent(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "antrea-agent.conf"
    path.write_text(text)
    return path


def agent_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_agent_config(write_agent(tmp_path, text))
    return str(info.value)


def test_empty_file_and_none_give_defaults(tmp_path):
    assert load_agent_config(write_agent(tmp_path, "")) == AgentConfig.model_validate({})
    assert load_agent_config(write_agent(tmp_path, "---\n")) == AgentConfig.model_validate({})
    assert load_agent_config(write_agent(tmp_path, "# only comments\n")).ovs_bridge == "br-int"
    assert load_agent_config(None).api_port == 10350
    assert load_controller_config(None) == ControllerConfig.model_validate({})


def test_null_and_empty_string_mean_default(tmp_path):
    c = load_agent_config(write_agent(tmp_path, 'tunnelType: ""\negress:\n  exceptCIDRs:\n'))
    assert c.tunnel_type == "geneve"
    assert c.egress.except_cidrs == []


def test_invalid_choice_names_key_and_allowed_values(tmp_path):
    message = agent_error(tmp_path, "tunnelType: vxlann\n")
    expected = (
        'antrea-agent.conf: tunnelType: invalid value "vxlann"; allowed: geneve, vxlan, gre, stt'
    )
    assert expected in message
    assert "(line 1)" in message


def test_nested_invalid_choice_uses_dotted_path(tmp_path):
    message = agent_error(tmp_path, "antreaProxy:\n  defaultLoadBalancerMode: dnat\n")
    assert 'antreaProxy.defaultLoadBalancerMode: invalid value "dnat"; allowed: nat, dsr' in message
    assert "(line 2)" in message


def test_wrong_type_names_expected_type(tmp_path):
    message = agent_error(tmp_path, "antreaProxy:\n  proxyAll: maybe\n")
    assert 'antreaProxy.proxyAll: expected true or false, got string "maybe"' in message
    message = agent_error(tmp_path, 'apiPort: "10350"\n')
    assert 'apiPort: expected an integer, got string "10350"' in message


def test_out_of_range_port(tmp_path):
    assert "apiPort: 70000 is out of range; allowed: 1..65535" in agent_error(
        tmp_path, "apiPort: 70000\n"
    )


def test_unknown_key_suggests_closest(tmp_path):
    message = agent_error(tmp_path, "tunelType: vxlan\n")
    assert 'antrea-agent.conf: unknown key "tunelType" (did you mean "tunnelType"?)' in message


def test_nested_unknown_key_is_rejected_with_path(tmp_path):
    message = agent_error(tmp_path, "antreaProxy:\n  proxyAl: true\n")
    assert 'unknown key "antreaProxy.proxyAl" (did you mean "antreaProxy.proxyAll"?)' in message


def test_unknown_key_without_close_match_lists_known_keys(tmp_path):
    message = agent_error(tmp_path, "ipsec:\n  zzz: 1\n")
    assert 'unknown key "ipsec.zzz"; known keys here: authenticationMode' in message


def test_unknown_key_inside_list_item(tmp_path):
    text = "secondaryNetwork:\n  ovsBridges:\n  - bridgeName: br1\n    physicalInterface: [eth1]\n"
    message = agent_error(tmp_path, text)
    assert (
        'unknown key "secondaryNetwork.ovsBridges[0].physicalInterface" '
        '(did you mean "secondaryNetwork.ovsBridges[0].physicalInterfaces"?)'
    ) in message


def test_every_problem_is_reported_in_file_order(tmp_path):
    message = agent_error(tmp_path, "tunnelType: x\napiPort: 0\nfoo: 1\n")
    lines = message.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(str(tmp_path / "antrea-agent.conf") + ": tunnelType")
    assert "apiPort" in lines[1] and '"foo"' in lines[2]


def test_feature_gate_override_from_file(tmp_path):
    c = load_agent_config(write_agent(tmp_path, "featureGates:\n  FlowExporter: true\n"))
    assert c.gates.enabled("FlowExporter")


def test_unknown_feature_gate_names_gate_and_known_ones(tmp_path):
    message = agent_error(tmp_path, "featureGates:\n  Foo: true\n")
    assert "featureGates.Foo: unknown feature gate \"Foo\"" in message
    assert "known: " in message and "AntreaProxy" in message
    assert "(line 2)" in message


def test_misspelt_feature_gate_gets_suggestion(tmp_path):
    assert 'did you mean "Multicast"' in agent_error(tmp_path, "featureGates:\n  Multicst: true\n")


def test_locked_feature_gate_cannot_be_disabled(tmp_path):
    message = agent_error(tmp_path, "featureGates:\n  TopologyAwareHints: false\n")
    assert "featureGates.TopologyAwareHints:" in message and "locked" in message


def test_enable_ipsec_tunnel_conflicting_with_wireguard(tmp_path):
    message = agent_error(tmp_path, "enableIPSecTunnel: true\ntrafficEncryptionMode: wireGuard\n")
    assert "enableIPSecTunnel:" in message and "conflicts" in message and "wireGuard" in message
    assert "(line 1)" in message


def test_enable_ipsec_tunnel_with_none_or_ipsec_means_ipsec(tmp_path):
    for mode in ("none", "ipsec"):
        path = write_agent(tmp_path, f"enableIPSecTunnel: true\ntrafficEncryptionMode: {mode}\n")
        assert load_agent_config(path).traffic_encryption_mode == "ipsec"


def test_stt_on_userspace_datapath_rejected(tmp_path):
    message = agent_error(tmp_path, "ovsDatapathType: netdev\ntunnelType: stt\n")
    assert "tunnelType:" in message
    assert "userspace datapath" in message and "cannot do STT" in message


def test_stt_on_system_datapath_allowed(tmp_path):
    path = write_agent(tmp_path, "tunnelType: stt\n")
    assert load_agent_config(path).effective_tunnel_port == 7471


def test_service_cidr_must_be_cidr(tmp_path):
    message = agent_error(tmp_path, "serviceCIDR: 10.96.0.0\n")
    assert 'serviceCIDR: invalid CIDR "10.96.0.0"' in message
    assert "serviceCIDRv6" in agent_error(tmp_path, "serviceCIDRv6: 10.96.0.0/12\n")


@pytest.mark.parametrize("mtu", [0, 576, 1450, 9216])
def test_default_mtu_accepts_zero_and_range(tmp_path, mtu):
    assert load_agent_config(write_agent(tmp_path, f"defaultMTU: {mtu}\n")).default_mtu == mtu


@pytest.mark.parametrize("mtu", [100, 575, 9217])
def test_default_mtu_rejects_outside_range(tmp_path, mtu):
    assert "defaultMTU:" in agent_error(tmp_path, f"defaultMTU: {mtu}\n")
    assert "576..9216" in agent_error(tmp_path, f"defaultMTU: {mtu}\n")


def test_node_port_local_port_range_form(tmp_path):
    message = agent_error(tmp_path, "nodePortLocal:\n  portRange: 61000\n")
    assert "nodePortLocal.portRange:" in message
    message = agent_error(tmp_path, 'nodePortLocal:\n  portRange: "62000-61000"\n')
    expected = 'nodePortLocal.portRange: invalid port range "62000-61000"; expected "start-end"'
    assert expected in message


def test_gated_option_needs_its_gate(tmp_path):
    message = agent_error(tmp_path, "ipsec:\n  authenticationMode: cert\n")
    assert "ipsec.authenticationMode: cert requires feature gate IPsecCertAuth" in message
    ok = "featureGates:\n  IPsecCertAuth: true\nipsec:\n  authenticationMode: cert\n"
    assert load_agent_config(write_agent(tmp_path, ok)).ipsec.authentication_mode == "cert"


def test_no_snat_only_in_no_encap(tmp_path):
    assert "noSNAT:" in agent_error(tmp_path, "noSNAT: true\n")
    path = write_agent(tmp_path, "noSNAT: true\ntrafficEncapMode: noEncap\n")
    assert load_agent_config(path).no_snat


def test_encryption_needs_encap_mode(tmp_path):
    message = agent_error(tmp_path, "trafficEncryptionMode: wireGuard\ntrafficEncapMode: hybrid\n")
    assert "trafficEncryptionMode:" in message and "encap" in message


def test_duration_format_checked(tmp_path):
    message = agent_error(tmp_path, "flowExporter:\n  flowPollInterval: 5 seconds\n")
    assert 'flowExporter.flowPollInterval: invalid duration "5 seconds"' in message


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    message = agent_error(tmp_path, "ovsBridge: br-int\napiPort: 10350\n  proxyAll: true\n")
    assert message.startswith(str(tmp_path / "antrea-agent.conf") + ": line 3, column 11:")
    assert "invalid YAML: mapping values are not allowed here" in message


def test_duplicate_key_rejected(tmp_path):
    message = agent_error(tmp_path, "apiPort: 1\napiPort: 2\n")
    assert 'line 2, column 1: invalid YAML: duplicate key "apiPort"' in message


def test_top_level_must_be_mapping(tmp_path):
    assert "expected a mapping of keys at the top level, got list" in agent_error(
        tmp_path, "- a\n- b\n"
    )


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_agent_config(tmp_path / "nope.conf")


def test_overrides_apply_over_file_nested_and_dotted(tmp_path):
    path = write_agent(tmp_path, "ovsDatapathType: netdev\nantreaProxy:\n  proxyAll: true\n")
    c = load_agent_config(
        path,
        {"antreaProxy": {"skipServices": ["kube-system/kube-dns"]}, "featureGates.Egress": False},
    )
    assert c.ovs_datapath_type == "netdev"
    assert c.antrea_proxy.proxy_all
    assert c.antrea_proxy.skip_services == ["kube-system/kube-dns"]
    assert not c.gates.enabled("Egress")


def test_bad_override_is_reported_without_line():
    with pytest.raises(ConfigError) as info:
        load_agent_config(None, {"tunnelType": "stt", "ovsDatapathType": "netdev"})
    assert str(info.value).startswith("antrea-agent.conf: tunnelType:")
    assert info.value.issues[0].line is None
    assert info.value.issues[0].key == "tunnelType"


def test_controller_errors_name_controller_file(tmp_path):
    path = tmp_path / "antrea-controller.conf"
    path.write_text("nodeIPAM:\n  nodeCIDRMaskSizeIPv4: 8\nfeatureGates:\n  FlowExporter: true\n")
    with pytest.raises(ConfigError) as info:
        load_controller_config(path)
    message = str(info.value)
    expected = "nodeIPAM.nodeCIDRMaskSizeIPv4: 8 is out of range; allowed: 16..30"
    assert f"antrea-controller.conf: {expected}" in message
    assert "featureGates.FlowExporter:" in message and "antrea-agent" in message


def test_controller_node_ipam_needs_cluster_cidrs(tmp_path):
    path = tmp_path / "antrea-controller.conf"
    path.write_text("nodeIPAM:\n  enableNodeIPAM: true\n")
    with pytest.raises(ConfigError, match=r"nodeIPAM\.clusterCIDRs: at least one CIDR"):
        load_controller_config(path)
    path.write_text("nodeIPAM:\n  enableNodeIPAM: true\n  clusterCIDRs: [10.244.0.0/16]\n")
    assert load_controller_config(path).node_ipam_enabled
    path.write_text("nodeIPAM:\n  clusterCIDRs: [10.244.0.0/16, 10.245.0.0/16]\n")
    with pytest.raises(ConfigError, match="at most one IPv4 CIDR"):
        load_controller_config(path)
