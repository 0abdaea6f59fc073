"""The antrea-controller configuration (antrea-controller.conf), with Antrea's keys and defaults."""

from __future__ import annotations

from pydantic import Field, PrivateAttr, field_validator, model_validator

from antrea_core.config.feature_gates import Component, FeatureGates
from antrea_core.config.fields import (
    Cidr,
    ClientConnection,
    ConfBase,
    ConfigValueError,
    OptionalCidrV6,
    Port,
    TLSMinVersion,
    int_range,
    parse_cidr,
)


class NodeIPAMConfig(ConfBase):
    enable_node_ipam: bool = Field(False, alias="enableNodeIPAM")
    # At most one CIDR per IP family.
    cluster_cidrs: list[Cidr] = Field(default_factory=list, alias="clusterCIDRs")
    service_cidr: str = Field("", alias="serviceCIDR")
    service_cidr_v6: OptionalCidrV6 = Field("", alias="serviceCIDRv6")
    node_cidr_mask_size_ipv4: int_range(16, 30) = Field(  # type: ignore[valid-type]
        24, alias="nodeCIDRMaskSizeIPv4"
    )
    node_cidr_mask_size_ipv6: int_range(64, 126) = Field(  # type: ignore[valid-type]
        64, alias="nodeCIDRMaskSizeIPv6"
    )

    @field_validator("service_cidr")
    @classmethod
    def _check_service_cidr(cls, value: str) -> str:
        if value:
            parse_cidr(value, 4)
        return value

    @model_validator(mode="after")
    def _check(self) -> NodeIPAMConfig:
        families = [parse_cidr(c).version for c in self.cluster_cidrs]
        for family in (4, 6):
            if families.count(family) > 1:
                raise ConfigValueError(
                    "clusterCIDRs", f"at most one IPv{family} CIDR may be given"
                )
        if self.enable_node_ipam and not self.cluster_cidrs:
            raise ConfigValueError(
                "clusterCIDRs", "at least one CIDR is required when enableNodeIPAM is true"
            )
        return self


class IPsecCSRSignerConfig(ConfBase):
    auto_approve: bool = Field(True, alias="autoApprove")
    self_signed_ca: bool = Field(True, alias="selfSignedCA")


class ControllerMulticlusterConfig(ConfBase):
    enable_stretched_network_policy: bool = Field(False, alias="enableStretchedNetworkPolicy")


class ControllerConfig(ConfBase):
    """antrea-controller.conf. Every key is optional; defaults are Antrea's."""

    feature_gates: dict[str, bool] = Field(default_factory=dict, alias="featureGates")
    client_connection: ClientConnection = Field(
        default_factory=ClientConnection, alias="clientConnection"
    )
    api_port: Port = Field(10349, alias="apiPort")
    enable_prometheus_metrics: bool = Field(True, alias="enablePrometheusMetrics")
    # False: the Secret antrea-controller-tls must provide ca.crt, tls.crt and tls.key.
    self_signed_cert: bool = Field(True, alias="selfSignedCert")
    tls_cipher_suites: str = Field("", alias="tlsCipherSuites")
    tls_min_version: TLSMinVersion = Field("", alias="tlsMinVersion")
    client_ca_file: str = Field("", alias="clientCAFile")
    kube_api_server_override: str = Field("", alias="kubeAPIServerOverride")
    node_ipam: NodeIPAMConfig = Field(default_factory=NodeIPAMConfig, alias="nodeIPAM")
    ipsec_csr_signer: IPsecCSRSignerConfig = Field(
        default_factory=IPsecCSRSignerConfig, alias="ipsecCSRSigner"
    )
    multicluster: ControllerMulticlusterConfig = Field(
        default_factory=ControllerMulticlusterConfig
    )

    _gates: FeatureGates = PrivateAttr()

    @field_validator("feature_gates")
    @classmethod
    def _check_gates(cls, value: dict[str, bool]) -> dict[str, bool]:
        FeatureGates(Component.CONTROLLER, value)  # raises FeatureGateError naming the gate
        return value

    def model_post_init(self, context: object, /) -> None:
        self._gates = FeatureGates(Component.CONTROLLER, self.feature_gates)

    @model_validator(mode="after")
    def _check_node_ipam_gate(self) -> ControllerConfig:
        if self.node_ipam.enable_node_ipam and not self._gates.enabled("NodeIPAM"):
            raise ConfigValueError(
                "nodeIPAM.enableNodeIPAM", "requires feature gate NodeIPAM: true"
            )
        return self

    @property
    def gates(self) -> FeatureGates:
        return self._gates

    @property
    def node_ipam_enabled(self) -> bool:
        return self.node_ipam.enable_node_ipam and self._gates.enabled("NodeIPAM")

    def enabled_features(self) -> set[str]:
        return set(self._gates.enabled_set())

    def feature_enabled(self, name: str) -> bool:
        """Whether gate ``name`` is on; KeyError for names that are not controller gates."""
        return self._gates.enabled(name)
