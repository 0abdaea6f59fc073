"""Antrea's feature gates: which exist, their default and maturity, and per-process resolution.

The table follows Antrea's docs/feature-gates.md and the defaults shipped in its manifests.
Gate semantics follow the Kubernetes convention Antrea adopts: Alpha is off by default,
Beta on, GA on; a GA gate may be *locked*, meaning it can no longer be turned off.
``AllAlpha`` / ``AllBeta`` are global toggles for every alpha / beta gate that the user did
not set explicitly.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from antrea_core.config.fields import yaml_kind


class Stage(StrEnum):
    ALPHA = "Alpha"
    BETA = "Beta"
    GA = "GA"
    DEPRECATED = "Deprecated"
    PLUGIN = "Plugin"  # a third-party feature plugin's gate (see docs/plugins.md)


class Component(StrEnum):
    AGENT = "antrea-agent"
    CONTROLLER = "antrea-controller"


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    default: bool
    stage: Stage
    components: frozenset[Component]
    # A locked gate is pinned to its default; setting it to anything else is an error.
    locked: bool = False


_A = frozenset({Component.AGENT})
_C = frozenset({Component.CONTROLLER})
_AC = frozenset({Component.AGENT, Component.CONTROLLER})

_ALL: tuple[FeatureSpec, ...] = (
    FeatureSpec("AntreaProxy", True, Stage.GA, _A),
    FeatureSpec("EndpointSlice", True, Stage.GA, _A, locked=True),
    FeatureSpec("TopologyAwareHints", True, Stage.GA, _A, locked=True),
    FeatureSpec("ServiceTrafficDistribution", True, Stage.GA, _A, locked=True),
    FeatureSpec("PreferSameTrafficDistribution", False, Stage.ALPHA, _A),
    FeatureSpec("CleanupStaleUDPSvcConntrack", True, Stage.BETA, _A),
    FeatureSpec("LoadBalancerModeDSR", False, Stage.ALPHA, _A),
    FeatureSpec("AntreaPolicy", True, Stage.BETA, _AC),
    FeatureSpec("Traceflow", True, Stage.BETA, _AC),
    FeatureSpec("FlowExporter", False, Stage.ALPHA, _A),
    FeatureSpec("NetworkPolicyStats", True, Stage.BETA, _AC),
    FeatureSpec("NodePortLocal", True, Stage.GA, _A),
    FeatureSpec("Egress", True, Stage.BETA, _AC),
    FeatureSpec("NodeIPAM", True, Stage.BETA, _C),
    FeatureSpec("AntreaIPAM", False, Stage.ALPHA, _AC),
    FeatureSpec("Multicast", True, Stage.BETA, _AC),
    FeatureSpec("SecondaryNetwork", False, Stage.ALPHA, _A),
    # Antrea's docs table says false, but its code and manifests ship it enabled.
    FeatureSpec("ServiceExternalIP", True, Stage.BETA, _AC),
    FeatureSpec("TrafficControl", False, Stage.ALPHA, _A),
    FeatureSpec("Multicluster", False, Stage.ALPHA, _AC),
    FeatureSpec("IPsecCertAuth", False, Stage.ALPHA, _AC),
    # The docs list it as agent-only; the controller manifest carries it too.
    FeatureSpec("ExternalNode", False, Stage.ALPHA, _AC),
    FeatureSpec("SupportBundleCollection", False, Stage.ALPHA, _AC),
    FeatureSpec("L7NetworkPolicy", False, Stage.ALPHA, _AC),
    FeatureSpec("AdminNetworkPolicy", False, Stage.DEPRECATED, _C),
    FeatureSpec("ClusterNetworkPolicy", False, Stage.ALPHA, _C),
    FeatureSpec("EgressTrafficShaping", False, Stage.ALPHA, _A),
    FeatureSpec("EgressSeparateSubnet", True, Stage.BETA, _A),
    FeatureSpec("NodeNetworkPolicy", False, Stage.ALPHA, _A),
    FeatureSpec("BGPPolicy", False, Stage.ALPHA, _A),
    FeatureSpec("NodeLatencyMonitor", False, Stage.ALPHA, _A),
    FeatureSpec("PacketCapture", False, Stage.ALPHA, _A),
    FeatureSpec("NFTablesHostNetworkMode", False, Stage.ALPHA, _A),
    FeatureSpec("AntreaNodeConfig", True, Stage.BETA, _A),
)

ALL_FEATURES: Mapping[str, FeatureSpec] = MappingProxyType({s.name: s for s in _ALL})


def _for(component: Component) -> Mapping[str, FeatureSpec]:
    return MappingProxyType({s.name: s for s in _ALL if component in s.components})


AGENT_FEATURES = _for(Component.AGENT)
CONTROLLER_FEATURES = _for(Component.CONTROLLER)

ALL_ALPHA = "AllAlpha"
ALL_BETA = "AllBeta"
GLOBAL_TOGGLES: Mapping[str, Stage] = MappingProxyType(
    {ALL_ALPHA: Stage.ALPHA, ALL_BETA: Stage.BETA}
)


def plugin_gates() -> dict[str, FeatureSpec]:
    """Gates of installed feature plugins that are not Antrea gates (third-party plugins,
    and our own features that Antrea has no gate for). Default: the plugin's
    ``default_enabled``."""
    # Imported here: the plugin loader depends on stevedore, the config must not at import.
    from antrea_core.plugins.loading import installed_features

    return {
        name: FeatureSpec(name, feature.default_enabled, Stage.PLUGIN, _A)
        for name, feature in installed_features().items()
        if name not in ALL_FEATURES
    }


class FeatureGateError(ValueError):
    """A bad entry under ``featureGates``; ``gate`` is the offending name as written."""

    def __init__(self, gate: str, message: str) -> None:
        super().__init__(message)
        self.gate = gate


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, or None when nothing is close."""
    by_lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


class FeatureGates:
    """Feature gates of one process: defaults of its component with user overrides applied.

    Raises FeatureGateError for unknown names, non-boolean values and locked gates set
    away from their default.
    """

    def __init__(
        self,
        component: Component = Component.AGENT,
        overrides: Mapping[str, object] | None = None,
    ) -> None:
        self.component = component
        if component is Component.AGENT:
            self.specs: Mapping[str, FeatureSpec] = {**AGENT_FEATURES, **plugin_gates()}
        else:
            self.specs = CONTROLLER_FEATURES
        overrides = dict(overrides or {})
        for name, value in overrides.items():
            self._check(name, value)
        self.overrides: Mapping[str, bool] = MappingProxyType(overrides)  # type: ignore[arg-type]
        self._state = {name: self._resolve(spec, overrides) for name, spec in self.specs.items()}

    def _check(self, name: str, value: object) -> None:
        if not isinstance(name, str):
            raise FeatureGateError(str(name), f"feature gate names are strings, got {name!r}")
        if name not in self.specs and name not in GLOBAL_TOGGLES:
            raise FeatureGateError(name, self._unknown_message(name))
        if not isinstance(value, bool):
            raise FeatureGateError(
                name, f"expected true or false, got {yaml_kind(value)} {value!r}"
            )
        spec = self.specs.get(name)
        if spec is not None and spec.locked and value != spec.default:
            raise FeatureGateError(
                name,
                f"feature gate {name} is {spec.stage} and locked to "
                f"{str(spec.default).lower()}; it cannot be changed",
            )

    def _unknown_message(self, name: str) -> str:
        other = ALL_FEATURES.get(name)
        if other is not None:
            owners = ", ".join(sorted(c.value for c in other.components))
            return f"feature gate {name} does not apply to {self.component}; it is for {owners}"
        known = sorted(self.specs) + sorted(GLOBAL_TOGGLES)
        hint = suggest(name, known)
        did_you_mean = f' (did you mean "{hint}"?)' if hint else ""
        return f'unknown feature gate "{name}"{did_you_mean}; known: {", ".join(known)}'

    @staticmethod
    def _resolve(spec: FeatureSpec, overrides: Mapping[str, bool]) -> bool:
        if spec.name in overrides:
            return overrides[spec.name]
        for toggle, stage in GLOBAL_TOGGLES.items():
            if spec.stage is stage and toggle in overrides:
                return overrides[toggle]
        return spec.default

    def enabled(self, name: str) -> bool:
        """Whether gate ``name`` is on; an unknown name is a programming error (KeyError)."""
        try:
            return self._state[name]
        except KeyError:
            raise KeyError(f"{name} is not a feature gate of {self.component}") from None

    def enabled_set(self) -> frozenset[str]:
        return frozenset(name for name, on in self._state.items() if on)

    def as_dict(self) -> dict[str, bool]:
        """Every gate of this component with its resolved state, sorted by name."""
        return dict(sorted(self._state.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureGates):
            return NotImplemented
        return self.component is other.component and self._state == other._state

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FeatureGates({self.component.value}, overrides={dict(self.overrides)})"
