import pytest

from antrea_core.config.feature_gates import (
    AGENT_FEATURES,
    ALL_FEATURES,
    CONTROLLER_FEATURES,
    Component,
    FeatureGateError,
    FeatureGates,
    Stage,
)

pytestmark = pytest.mark.unit


def test_defaults_follow_stage_convention():
    for spec in ALL_FEATURES.values():
        if spec.stage in (Stage.ALPHA, Stage.DEPRECATED):
            assert spec.default is False, spec.name
        else:
            assert spec.default is True, spec.name


def test_known_antrea_defaults():
    gates = FeatureGates(Component.AGENT)
    assert gates.enabled("AntreaProxy")
    assert gates.enabled("Traceflow")
    assert gates.enabled("Egress")
    assert not gates.enabled("FlowExporter")
    assert not gates.enabled("Multicluster")
    assert not gates.enabled("PacketCapture")
    assert FeatureGates(Component.CONTROLLER).enabled("NodeIPAM")


def test_components_split_gates():
    assert "NodeIPAM" in CONTROLLER_FEATURES and "NodeIPAM" not in AGENT_FEATURES
    assert "FlowExporter" in AGENT_FEATURES and "FlowExporter" not in CONTROLLER_FEATURES
    assert "AntreaPolicy" in AGENT_FEATURES and "AntreaPolicy" in CONTROLLER_FEATURES


def test_override_beats_default():
    gates = FeatureGates(Component.AGENT, {"FlowExporter": True, "Traceflow": False})
    assert gates.enabled("FlowExporter")
    assert not gates.enabled("Traceflow")
    assert "FlowExporter" in gates.enabled_set()


def test_all_alpha_enables_alpha_gates_unless_set_explicitly():
    gates = FeatureGates(Component.AGENT, {"AllAlpha": True, "PacketCapture": False})
    assert gates.enabled("FlowExporter")
    assert gates.enabled("BGPPolicy")
    assert not gates.enabled("PacketCapture")
    assert gates.enabled("Traceflow")  # beta: untouched


def test_all_beta_false_disables_beta_but_not_ga():
    gates = FeatureGates(Component.AGENT, {"AllBeta": False})
    assert not gates.enabled("Egress")
    assert gates.enabled("AntreaProxy")


def test_unknown_gate_rejected_with_suggestion_and_known_list():
    with pytest.raises(FeatureGateError) as info:
        FeatureGates(Component.AGENT, {"Tracefow": True})
    assert info.value.gate == "Tracefow"
    message = str(info.value)
    assert 'did you mean "Traceflow"' in message
    assert "known:" in message and "AntreaPolicy" in message and "PacketCapture" in message


def test_gate_of_other_component_names_its_owner():
    with pytest.raises(FeatureGateError, match="for antrea-controller"):
        FeatureGates(Component.AGENT, {"NodeIPAM": True})


def test_locked_ga_gate_cannot_be_disabled():
    with pytest.raises(FeatureGateError, match="locked"):
        FeatureGates(Component.AGENT, {"EndpointSlice": False})
    assert FeatureGates(Component.AGENT, {"EndpointSlice": True}).enabled("EndpointSlice")


def test_non_boolean_value_rejected():
    with pytest.raises(FeatureGateError, match="expected true or false"):
        FeatureGates(Component.AGENT, {"Egress": "yes"})


def test_asking_for_unknown_gate_in_code_is_keyerror():
    with pytest.raises(KeyError):
        FeatureGates(Component.AGENT).enabled("NoSuchGate")
