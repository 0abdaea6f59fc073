"""Configuration of antrea-agent and antrea-controller (their .conf files)."""

from antrea_core.config.agent import AgentConfig
from antrea_core.config.controller import ControllerConfig
from antrea_core.config.feature_gates import Component, FeatureGateError, FeatureGates, Stage
from antrea_core.config.loading import ConfigError, load_agent_config, load_controller_config

__all__ = [
    "AgentConfig",
    "Component",
    "ConfigError",
    "ControllerConfig",
    "FeatureGateError",
    "FeatureGates",
    "Stage",
    "load_agent_config",
    "load_controller_config",
]
