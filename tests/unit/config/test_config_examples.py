"""The documented example configs in deploy/kubernetes/conf load and cover every key."""

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from antrea_core.config.agent import AgentConfig
from antrea_core.config.controller import ControllerConfig
from antrea_core.config.feature_gates import AGENT_FEATURES, CONTROLLER_FEATURES
from antrea_core.config.loading import _nested_model, load_agent_config, load_controller_config

pytestmark = pytest.mark.unit

CONF_DIR = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes" / "conf"


def model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        keys.add(key)
        nested = _nested_model(field.annotation)
        # List-of-model fields are documented by example in comments; sections are spelled out.
        if nested is not None and not str(field.annotation).startswith("list"):
            keys |= model_keys(nested, key + ".")
    return keys


def file_keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        keys.add(prefix + key)
        if isinstance(value, dict) and key != "featureGates":
            keys |= file_keys(value, prefix + key + ".")
    return keys


def same_resolved_config(a: BaseModel, b: BaseModel) -> bool:
    """Equal values and equal resolved gates (the raw featureGates maps differ on purpose)."""
    skip = {"feature_gates"}
    return a.model_dump(exclude=skip) == b.model_dump(exclude=skip) and a.gates == b.gates


def test_agent_example_loads_and_equals_defaults():
    path = CONF_DIR / "antrea-agent.conf"
    assert same_resolved_config(load_agent_config(path), AgentConfig.model_validate({}))


def test_agent_example_spells_out_every_key_and_gate():
    data = yaml.safe_load((CONF_DIR / "antrea-agent.conf").read_text())
    assert file_keys(data) == model_keys(AgentConfig)
    assert set(data["featureGates"]) == set(AGENT_FEATURES) | {"AllAlpha", "AllBeta"}


def test_controller_example_loads_and_equals_defaults():
    path = CONF_DIR / "antrea-controller.conf"
    loaded = load_controller_config(path)
    assert same_resolved_config(loaded, ControllerConfig.model_validate({}))


def test_controller_example_spells_out_every_key_and_gate():
    data = yaml.safe_load((CONF_DIR / "antrea-controller.conf").read_text())
    assert file_keys(data) == model_keys(ControllerConfig)
    assert set(data["featureGates"]) == set(CONTROLLER_FEATURES) | {"AllAlpha", "AllBeta"}
