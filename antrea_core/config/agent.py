"""The antrea-agent configuration (antrea-agent.conf), with Antrea's own keys and defaults.

Attributes are snake_case; the aliases are the camelCase keys of the file. Build one with
``AgentConfig.model_validate(mapping)`` (or loading.load_agent_config);
``model_dump(by_alias=True)`` gives the file's spelling back.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from antrea_core.config.feature_gates import Component, FeatureGates
from antrea_core.config.fields import (
    Cidr,
    ClientConnection,
    ConfBase,
    ConfigValueError,
    Duration,
    OptionalCidrV6,
    Port,
    PortOrZero,
    TLSMinVersion,
    choice,
    int_range,
    parse_cidr,
)

DatapathType = Literal["system", "netdev"]
TrafficEncapMode = Literal["encap", "noEncap", "hybrid", "networkPolicyOnly"]
TunnelType = Literal["geneve", "vxlan", "gre", "stt"]
TrafficEncryptionMode = Literal["none", "ipsec", "wireGuard"]
LoadBalancerMode = Literal["nat", "dsr"]
IPsecAuthMode = Literal["psk", "cert"]
NodeType = Literal["k8sNode", "externalNode"]
HostNetworkMode = Literal["iptables", "nftables"]
FlowProtocol = Literal["tcp", "udp", "sctp"]

# IANA ports used when tunnelPort is 0 (GRE has no port).
DEFAULT_TUNNEL_PORTS: dict[str, int] = {"geneve": 6081, "vxlan": 4789, "stt": 7471}
MIN_MTU, MAX_MTU = 576, 9216
FLOW_COLLECTOR_PROTOCOLS = ("grpc", "tls", "tcp", "udp")


class WireGuardConfig(ConfBase):
    port: Port = 51820


class NodePortLocalConfig(ConfBase):
    enable: bool = False
    port_range: str = Field("61000-62000", alias="portRange")

    @field_validator("port_range")
    @classmethod
    def _check_range(cls, value: str) -> str:
        parse_port_range(value)
        return value

    @property
    def ports(self) -> tuple[int, int]:
        """First and last port of the range, inclusive."""
        return parse_port_range(self.port_range)


def parse_port_range(text: str) -> tuple[int, int]:
    """``"61000-62000"`` -> (61000, 62000); ValueError names the expected form."""
    start, sep, end = text.partition("-")
    bad = f'invalid port range "{text}"; expected "start-end" with 1 <= start < end <= 65535'
    if not sep or not start.isdigit() or not end.isdigit():
        raise ValueError(bad)
    first, last = int(start), int(end)
    if not 1 <= first < last <= 65535:
        raise ValueError(bad)
    return first, last


class FlowExporterConfig(ConfBase):
    enable: bool = False
    # <HOST>:[<PORT>][:<PROTO>]; HOST may be "<namespace>/<service>".
    flow_collector_addr: str = Field(
        "flow-aggregator/flow-aggregator:14739:grpc", alias="flowCollectorAddr"
    )
    flow_poll_interval: Duration = Field("5s", alias="flowPollInterval")
    active_flow_export_timeout: Duration = Field("5s", alias="activeFlowExportTimeout")
    idle_flow_export_timeout: Duration = Field("15s", alias="idleFlowExportTimeout")
    protocol_filter: list[choice(FlowProtocol)] = Field(  # type: ignore[valid-type]
        default_factory=list, alias="protocolFilter"
    )

    @field_validator("flow_collector_addr")
    @classmethod
    def _check_addr(cls, value: str) -> str:
        parse_flow_collector_addr(value)
        return value


def parse_flow_collector_addr(text: str) -> tuple[str, int, str]:
    """``<HOST>:[<PORT>][:<PROTO>]`` -> (host, port, proto), with Antrea's defaults 4739, tls.

    An IPv6 HOST is written in brackets; ValueError names the expected form."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        rest = rest.removeprefix(":")
    else:
        host, _, rest = text.partition(":")
    parts = rest.split(":") if rest else []
    port_text = parts[0] if parts else ""
    proto = parts[1] if len(parts) > 1 else "tls"
    if not host or len(parts) > 2 or (port_text and not port_text.isdigit()):
        raise ValueError(f'invalid collector address "{text}"; expected <HOST>:[<PORT>][:<PROTO>]')
    port = int(port_text) if port_text else 4739
    if not 1 <= port <= 65535:
        raise ValueError(f'invalid port {port} in "{text}"; allowed: 1..65535')
    if proto not in FLOW_COLLECTOR_PROTOCOLS:
        raise ValueError(
            f'invalid protocol "{proto}" in "{text}"; '
            f"allowed: {', '.join(FLOW_COLLECTOR_PROTOCOLS)}"
        )
    return host, port, proto


class MulticastConfig(ConfBase):
    enable: bool = False
    multicast_interfaces: list[str] = Field(default_factory=list, alias="multicastInterfaces")
    igmp_query_versions: list[int] = Field(default=[1, 2, 3], alias="igmpQueryVersions")
    igmp_query_interval: Duration = Field("125s", alias="igmpQueryInterval")

    @field_validator("igmp_query_versions")
    @classmethod
    def _check_versions(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if v not in (1, 2, 3)]
        if bad:
            raise ValueError(f"IGMP versions {bad} are not supported; allowed: 1, 2, 3")
        return value


class AntreaProxyConfig(ConfBase):
    enable: bool = True
    proxy_all: bool = Field(False, alias="proxyAll")
    node_port_addresses: list[Cidr] = Field(default_factory=list, alias="nodePortAddresses")
    # ClusterIPs or "namespace/name" of Services AntreaProxy leaves alone.
    skip_services: list[str] = Field(default_factory=list, alias="skipServices")
    proxy_load_balancer_ips: bool = Field(True, alias="proxyLoadBalancerIPs")
    service_proxy_name: str = Field("", alias="serviceProxyName")
    default_load_balancer_mode: choice(LoadBalancerMode) = Field(  # type: ignore[valid-type]
        "nat", alias="defaultLoadBalancerMode"
    )
    disable_service_health_check_server: bool = Field(
        False, alias="disableServiceHealthCheckServer"
    )
    service_health_check_server_bind_address: str = Field(
        "", alias="serviceHealthCheckServerBindAddress"
    )


class EgressConfig(ConfBase):
    except_cidrs: list[Cidr] = Field(default_factory=list, alias="exceptCIDRs")
    max_egress_ips_per_node: int_range(1, 255) = Field(  # type: ignore[valid-type]
        255, alias="maxEgressIPsPerNode"
    )
    # None: inherit the top-level snatFullyRandomPorts.
    snat_fully_random_ports: bool | None = Field(None, alias="snatFullyRandomPorts")
    unique_mac_for_sub_interfaces: bool = Field(True, alias="uniqueMACForSubInterfaces")


class MemberlistConfig(ConfBase):
    gossip_verify_outgoing: bool = Field(True, alias="gossipVerifyOutgoing")
    gossip_verify_incoming: bool = Field(True, alias="gossipVerifyIncoming")


class IPsecConfig(ConfBase):
    authentication_mode: choice(IPsecAuthMode) = Field(  # type: ignore[valid-type]
        "psk", alias="authenticationMode"
    )


class MulticlusterWireGuardConfig(ConfBase):
    port: Port = 51821


class MulticlusterConfig(ConfBase):
    enable_gateway: bool = Field(False, alias="enableGateway")
    namespace: str = ""
    enable_stretched_network_policy: bool = Field(False, alias="enableStretchedNetworkPolicy")
    enable_pod_to_pod_connectivity: bool = Field(False, alias="enablePodToPodConnectivity")
    traffic_encryption_mode: choice(Literal["none", "wireGuard"]) = Field(  # type: ignore[valid-type]
        "none", alias="trafficEncryptionMode"
    )
    wire_guard: MulticlusterWireGuardConfig = Field(
        default_factory=MulticlusterWireGuardConfig, alias="wireGuard"
    )

    @model_validator(mode="after")
    def _check(self) -> MulticlusterConfig:
        if self.enable_stretched_network_policy and not self.enable_gateway:
            raise ConfigValueError(
                "enableStretchedNetworkPolicy", "requires multicluster.enableGateway: true"
            )
        return self


class PolicyBypassRule(ConfBase):
    direction: choice(Literal["ingress", "egress"])  # type: ignore[valid-type]
    protocol: choice(Literal["tcp", "udp", "icmp", "ip"])  # type: ignore[valid-type]
    cidr: Cidr
    port: PortOrZero = 0


class ExternalNodeConfig(ConfBase):
    external_node_namespace: str = Field("default", alias="externalNodeNamespace")
    policy_bypass_rules: list[PolicyBypassRule] = Field(
        default_factory=list, alias="policyBypassRules"
    )


class AuditLoggingConfig(ConfBase):
    max_size: int_range(1, 1 << 20) = Field(500, alias="maxSize")  # type: ignore[valid-type]
    max_backups: int_range(0, 1 << 20) = Field(3, alias="maxBackups")  # type: ignore[valid-type]
    max_age: int_range(0, 1 << 20) = Field(28, alias="maxAge")  # type: ignore[valid-type]
    compress: bool = True


class OVSBridgeConfig(ConfBase):
    bridge_name: str = Field(alias="bridgeName", min_length=1)
    physical_interfaces: list[str] = Field(default_factory=list, alias="physicalInterfaces")
    enable_multicast_snooping: bool = Field(False, alias="enableMulticastSnooping")


class SecondaryNetworkConfig(ConfBase):
    ovs_bridges: list[OVSBridgeConfig] = Field(
        default_factory=list, alias="ovsBridges", max_length=1
    )


class HostNetworkAccelerationConfig(ConfBase):
    enable: bool = True


class AgentConfig(ConfBase):
    """antrea-agent.conf. Every key is optional; defaults are Antrea's (Linux)."""

    feature_gates: dict[str, bool] = Field(default_factory=dict, alias="featureGates")
    cni_socket: str = Field("/var/run/antrea/cni.sock", alias="cniSocket")
    client_connection: ClientConnection = Field(
        default_factory=ClientConnection, alias="clientConnection"
    )
    antrea_client_connection: ClientConnection = Field(
        default_factory=ClientConnection, alias="antreaClientConnection"
    )
    ovs_bridge: str = Field("br-int", alias="ovsBridge")
    ovs_datapath_type: choice(DatapathType) = Field(  # type: ignore[valid-type]
        "system", alias="ovsDatapathType"
    )
    ovs_run_dir: str = Field("/var/run/openvswitch", alias="ovsRunDir")
    host_gateway: str = Field("antrea-gw0", alias="hostGateway")
    traffic_encap_mode: choice(TrafficEncapMode) = Field(  # type: ignore[valid-type]
        "encap", alias="trafficEncapMode"
    )
    # Cluster-wide Pod CIDRs, comma-separated; only used in networkPolicyOnly mode.
    pod_cidrs: str = Field("", alias="podCIDRs")
    no_snat: bool = Field(False, alias="noSNAT")
    snat_fully_random_ports: bool = Field(False, alias="snatFullyRandomPorts")
    tunnel_type: choice(TunnelType) = Field("geneve", alias="tunnelType")  # type: ignore[valid-type]
    tunnel_port: PortOrZero = Field(0, alias="tunnelPort")
    tunnel_csum: bool = Field(False, alias="tunnelCsum")
    traffic_encryption_mode: choice(TrafficEncryptionMode) = Field(  # type: ignore[valid-type]
        "none", alias="trafficEncryptionMode"
    )
    # Deprecated: true means trafficEncryptionMode ipsec (resolved in _check_encryption).
    enable_ipsec_tunnel: bool = Field(False, alias="enableIPSecTunnel")
    wire_guard: WireGuardConfig = Field(default_factory=WireGuardConfig, alias="wireGuard")
    enable_bridging_mode: bool = Field(False, alias="enableBridgingMode")
    disable_tx_checksum_offload: bool = Field(False, alias="disableTXChecksumOffload")
    default_mtu: int = Field(0, alias="defaultMTU")
    packet_in_rate: int_range(1, 1_000_000) = Field(  # type: ignore[valid-type]
        5000, alias="packetInRate"
    )
    host_proc_path_prefix: str = Field("/host", alias="hostProcPathPrefix")
    service_cidr: Cidr = Field("10.96.0.0/12", alias="serviceCIDR")
    service_cidr_v6: OptionalCidrV6 = Field("", alias="serviceCIDRv6")
    api_port: Port = Field(10350, alias="apiPort")
    cluster_port: Port = Field(10351, alias="clusterPort")
    memberlist: MemberlistConfig = Field(default_factory=MemberlistConfig)
    enable_prometheus_metrics: bool = Field(True, alias="enablePrometheusMetrics")
    flow_exporter: FlowExporterConfig = Field(
        default_factory=FlowExporterConfig, alias="flowExporter"
    )
    node_port_local: NodePortLocalConfig = Field(
        default_factory=NodePortLocalConfig, alias="nodePortLocal"
    )
    kube_api_server_override: str = Field("", alias="kubeAPIServerOverride")
    dns_server_override: str = Field("", alias="dnsServerOverride")
    fqdn_cache_min_ttl: int_range(0, 1 << 31) = Field(  # type: ignore[valid-type]
        0, alias="fqdnCacheMinTTL"
    )
    tls_cipher_suites: str = Field("", alias="tlsCipherSuites")
    tls_min_version: TLSMinVersion = Field("", alias="tlsMinVersion")
    transport_interface: str = Field("", alias="transportInterface")
    transport_interface_cidrs: list[Cidr] = Field(
        default_factory=list, alias="transportInterfaceCIDRs"
    )
    multicast: MulticastConfig = Field(default_factory=MulticastConfig)
    antrea_proxy: AntreaProxyConfig = Field(default_factory=AntreaProxyConfig, alias="antreaProxy")
    egress: EgressConfig = Field(default_factory=EgressConfig)
    ipsec: IPsecConfig = Field(default_factory=IPsecConfig)
    multicluster: MulticlusterConfig = Field(default_factory=MulticlusterConfig)
    node_type: choice(NodeType) = Field("k8sNode", alias="nodeType")  # type: ignore[valid-type]
    external_node: ExternalNodeConfig = Field(
        default_factory=ExternalNodeConfig, alias="externalNode"
    )
    audit_logging: AuditLoggingConfig = Field(
        default_factory=AuditLoggingConfig, alias="auditLogging"
    )
    secondary_network: SecondaryNetworkConfig = Field(
        default_factory=SecondaryNetworkConfig, alias="secondaryNetwork"
    )
    host_network_acceleration: HostNetworkAccelerationConfig = Field(
        default_factory=HostNetworkAccelerationConfig, alias="hostNetworkAcceleration"
    )
    host_network_mode: choice(HostNetworkMode) = Field(  # type: ignore[valid-type]
        "iptables", alias="hostNetworkMode"
    )

    _gates: FeatureGates = PrivateAttr()

    @field_validator("feature_gates")
    @classmethod
    def _check_gates(cls, value: dict[str, bool]) -> dict[str, bool]:
        FeatureGates(Component.AGENT, value)  # raises FeatureGateError naming the gate
        return value

    @field_validator("pod_cidrs")
    @classmethod
    def _check_pod_cidrs(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            parse_cidr(part)
        return value

    @field_validator("default_mtu")
    @classmethod
    def _check_mtu(cls, value: int) -> int:
        if value != 0 and not MIN_MTU <= value <= MAX_MTU:
            raise ValueError(
                f"{value} is out of range; allowed: 0 (discover) or {MIN_MTU}..{MAX_MTU}"
            )
        return value

    @model_validator(mode="after")
    def _check_encryption(self) -> AgentConfig:
        if self.enable_ipsec_tunnel:
            if self.traffic_encryption_mode not in ("none", "ipsec"):
                raise ConfigValueError(
                    "enableIPSecTunnel",
                    "deprecated enableIPSecTunnel: true conflicts with trafficEncryptionMode "
                    f'"{self.traffic_encryption_mode}"; set only trafficEncryptionMode: ipsec',
                )
            # The model is frozen; resolve the deprecated flag once, here.
            self.__dict__["traffic_encryption_mode"] = "ipsec"
        mode = self.traffic_encryption_mode
        if mode == "wireGuard" and self.traffic_encap_mode != "encap":
            raise ConfigValueError(
                "trafficEncryptionMode",
                f"wireGuard is only supported with trafficEncapMode encap, "
                f'not "{self.traffic_encap_mode}"',
            )
        if mode != "none" and self.traffic_encap_mode in ("noEncap", "hybrid"):
            raise ConfigValueError(
                "trafficEncryptionMode",
                f'{mode} may only be enabled with trafficEncapMode encap, '
                f'not "{self.traffic_encap_mode}"',
            )
        return self

    @model_validator(mode="after")
    def _check_datapath(self) -> AgentConfig:
        if self.tunnel_type == "stt" and self.ovs_datapath_type != "system":
            raise ConfigValueError(
                "tunnelType",
                f'stt needs ovsDatapathType system; the userspace datapath ("'
                f'{self.ovs_datapath_type}") cannot do STT; allowed with it: geneve, vxlan, gre',
            )
        if self.no_snat and self.traffic_encap_mode not in ("noEncap", "networkPolicyOnly"):
            raise ConfigValueError(
                "noSNAT", f'true is only applicable to trafficEncapMode noEncap, '
                f'not "{self.traffic_encap_mode}"'
            )
        return self

    @model_validator(mode="after")
    def _check_gated_options(self) -> AgentConfig:
        gates = self._gates
        if self.ipsec.authentication_mode == "cert" and not gates.enabled("IPsecCertAuth"):
            raise ConfigValueError(
                "ipsec.authenticationMode", "cert requires feature gate IPsecCertAuth: true"
            )
        if self.antrea_proxy.default_load_balancer_mode == "dsr":
            if not gates.enabled("LoadBalancerModeDSR"):
                raise ConfigValueError(
                    "antreaProxy.defaultLoadBalancerMode",
                    "dsr requires feature gate LoadBalancerModeDSR: true",
                )
            if self.traffic_encap_mode != "encap":
                raise ConfigValueError(
                    "antreaProxy.defaultLoadBalancerMode", "dsr requires trafficEncapMode encap"
                )
        if self.enable_bridging_mode:
            if not gates.enabled("AntreaIPAM"):
                raise ConfigValueError(
                    "enableBridgingMode", "requires feature gate AntreaIPAM: true"
                )
            if self.traffic_encap_mode != "noEncap" or not self.no_snat:
                raise ConfigValueError(
                    "enableBridgingMode", "requires trafficEncapMode noEncap and noSNAT: true"
                )
        if self.host_network_mode == "nftables" and not gates.enabled("NFTablesHostNetworkMode"):
            raise ConfigValueError(
                "hostNetworkMode", "nftables requires feature gate NFTablesHostNetworkMode: true"
            )
        if self.node_type == "externalNode" and not gates.enabled("ExternalNode"):
            raise ConfigValueError(
                "nodeType", "externalNode requires feature gate ExternalNode: true"
            )
        if self.multicast.enable and gates.enabled("Multicast"):
            if self.traffic_encryption_mode != "none":
                raise ConfigValueError(
                    "multicast.enable",
                    f"multicast does not work with trafficEncryptionMode "
                    f'"{self.traffic_encryption_mode}"',
                )
            if self.traffic_encap_mode == "networkPolicyOnly":
                raise ConfigValueError(
                    "multicast.enable", "multicast does not work with networkPolicyOnly mode"
                )
        return self

    def model_post_init(self, context: object, /) -> None:
        # Runs after field validation, before the "after" model validators that read the gates.
        self._gates = FeatureGates(Component.AGENT, self.feature_gates)

    # Resolved views the rest of the agent uses.

    @property
    def gates(self) -> FeatureGates:
        return self._gates

    @property
    def tunnel_enabled(self) -> bool:
        """Whether inter-node Pod traffic may be encapsulated (encap or hybrid)."""
        return self.traffic_encap_mode in ("encap", "hybrid")

    @property
    def effective_tunnel_port(self) -> int:
        """tunnelPort, or the IANA port of tunnelType when it is 0 (0 for GRE)."""
        return self.tunnel_port or DEFAULT_TUNNEL_PORTS.get(self.tunnel_type, 0)

    @property
    def effective_no_snat(self) -> bool:
        """networkPolicyOnly never SNATs (the primary CNI may)."""
        return self.no_snat or self.traffic_encap_mode == "networkPolicyOnly"

    @property
    def egress_snat_fully_random_ports(self) -> bool:
        value = self.egress.snat_fully_random_ports
        return self.snat_fully_random_ports if value is None else value

    def enabled_features(self) -> set[str]:
        """Features that will actually run: gates that are on, minus those whose section's
        ``enable`` is false, plus derived ones ("IPsec", "WireGuard") from
        trafficEncryptionMode."""
        features = set(self._gates.enabled_set())
        section_switch = {
            "AntreaProxy": self.antrea_proxy.enable,
            "NodePortLocal": self.node_port_local.enable,
            "FlowExporter": self.flow_exporter.enable,
            "Multicast": self.multicast.enable,
        }
        features -= {name for name, on in section_switch.items() if not on}
        if self.traffic_encryption_mode == "ipsec":
            features.add("IPsec")
        elif self.traffic_encryption_mode == "wireGuard":
            features.add("WireGuard")
        return features

    def feature_enabled(self, name: str) -> bool:
        """Whether feature ``name`` runs (see enabled_features); KeyError for unknown names,
        so a typo in calling code fails loudly."""
        if name not in self._gates.specs and name not in DERIVED_FEATURES:
            raise KeyError(f"{name} is neither an agent feature gate nor a derived feature")
        return name in self.enabled_features()


DERIVED_FEATURES = frozenset({"IPsec", "WireGuard"})
