import pytest

from antrea_core.config.agent import AgentConfig, parse_flow_collector_addr, parse_port_range

pytestmark = pytest.mark.unit


def test_defaults_are_antreas():
    c = AgentConfig.model_validate({})
    assert c.ovs_bridge == "br-int"
    assert c.ovs_datapath_type == "system"
    assert c.ovs_run_dir == "/var/run/openvswitch"
    assert c.host_gateway == "antrea-gw0"
    assert c.traffic_encap_mode == "encap"
    assert c.tunnel_type == "geneve"
    assert c.tunnel_port == 0 and c.effective_tunnel_port == 6081
    assert c.traffic_encryption_mode == "none"
    assert c.cni_socket == "/var/run/antrea/cni.sock"
    assert c.host_proc_path_prefix == "/host"
    assert c.api_port == 10350
    assert c.service_cidr == "10.96.0.0/12"
    assert c.default_mtu == 0
    assert c.node_port_local.port_range == "61000-62000"
    assert c.antrea_proxy.enable and not c.antrea_proxy.proxy_all
    assert c.antrea_proxy.default_load_balancer_mode == "nat"
    assert c.egress.max_egress_ips_per_node == 255
    assert c.ipsec.authentication_mode == "psk"
    assert c.wire_guard.port == 51820


def test_tunnel_enabled_for_encap_and_hybrid_only():
    modes = {"encap": True, "hybrid": True, "noEncap": False, "networkPolicyOnly": False}
    for mode, expected in modes.items():
        assert AgentConfig.model_validate({"trafficEncapMode": mode}).tunnel_enabled is expected


def test_mode_names_are_case_insensitive_and_canonicalised():
    c = AgentConfig.model_validate({"trafficEncapMode": "NOENCAP", "tunnelType": "VXLAN"})
    assert c.traffic_encap_mode == "noEncap"
    assert c.tunnel_type == "vxlan"
    assert c.effective_tunnel_port == 4789


def test_enabled_features_include_derived_encryption_features():
    plain = AgentConfig.model_validate({})
    assert "IPsec" not in plain.enabled_features()
    ipsec = AgentConfig.model_validate({"trafficEncryptionMode": "ipsec"})
    assert ipsec.feature_enabled("IPsec") and not ipsec.feature_enabled("WireGuard")
    wg = AgentConfig.model_validate({"trafficEncryptionMode": "wireGuard"})
    assert wg.feature_enabled("WireGuard")


def test_section_enable_switch_turns_feature_off_despite_gate():
    c = AgentConfig.model_validate({"antreaProxy": {"enable": False}})
    assert c.gates.enabled("AntreaProxy")
    assert not c.feature_enabled("AntreaProxy")
    npl = AgentConfig.model_validate({"nodePortLocal": {"enable": True}})
    assert npl.feature_enabled("NodePortLocal")
    assert not AgentConfig.model_validate({}).feature_enabled("NodePortLocal")


def test_feature_gate_override_shows_in_enabled_features():
    c = AgentConfig.model_validate(
        {
            "featureGates": {"FlowExporter": True, "Traceflow": False},
            "flowExporter": {"enable": True},
        }
    )
    assert c.feature_enabled("FlowExporter")
    assert not c.feature_enabled("Traceflow")


def test_feature_enabled_rejects_names_that_are_not_features():
    with pytest.raises(KeyError):
        AgentConfig.model_validate({}).feature_enabled("Tracefow")


def test_enable_ipsec_tunnel_means_ipsec():
    c = AgentConfig.model_validate({"enableIPSecTunnel": True})
    assert c.traffic_encryption_mode == "ipsec"
    assert "IPsec" in c.enabled_features()


def test_egress_snat_random_ports_inherits_top_level():
    assert AgentConfig.model_validate({"snatFullyRandomPorts": True}).egress_snat_fully_random_ports
    c = AgentConfig.model_validate(
        {"snatFullyRandomPorts": True, "egress": {"snatFullyRandomPorts": False}}
    )
    assert not c.egress_snat_fully_random_ports


def test_config_is_immutable():
    c = AgentConfig.model_validate({})
    with pytest.raises(ValueError):
        c.ovs_bridge = "br-other"


def test_port_range_parsing():
    assert parse_port_range("61000-62000") == (61000, 62000)
    for bad in ("61000", "62000-61000", "0-10", "a-b", "1-70000"):
        with pytest.raises(ValueError):
            parse_port_range(bad)


def test_flow_collector_address_parsing():
    assert parse_flow_collector_addr("flow-aggregator/flow-aggregator:14739:grpc") == (
        "flow-aggregator/flow-aggregator", 14739, "grpc"
    )
    assert parse_flow_collector_addr("10.0.0.1") == ("10.0.0.1", 4739, "tls")
    assert parse_flow_collector_addr("[fd00::1]:4739:udp") == ("fd00::1", 4739, "udp")
    with pytest.raises(ValueError, match="allowed: grpc, tls, tcp, udp"):
        parse_flow_collector_addr("host:4739:sctp")
