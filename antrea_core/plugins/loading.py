"""Find plugins through entry points (stevedore) and register them with pluggy.

The agent config decides what is loaded: the tunnel driver named by `tunnelType`, and a
feature plugin for every enabled feature that has one. A feature the project ships as a
plugin that is enabled but not installed stops the agent, naming the pip distribution.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy
from stevedore import DriverManager, ExtensionManager
from stevedore.exception import NoMatches

from antrea_core.plugins import hookspecs

LOG = logging.getLogger("antrea.agent.plugins")

FEATURE_GROUP = "antrea.agent.features"
TUNNEL_GROUP = "antrea.agent.tunnels"

#: Features whose implementation ships as a separate distribution of this project.
SHIPPED_FEATURES: dict[str, str] = {
    "AntreaProxy": "antrea-plugin-proxy",
    "Egress": "antrea-plugin-egress",
    "IPsec": "antrea-plugin-ipsec",
    "HardwareOffload": "antrea-plugin-offload",
    "Windows": "antrea-plugin-windows",
}
TUNNELS_DISTRIBUTION = "antrea-plugin-tunnels"


class PluginError(RuntimeError):
    """A plugin could not be found, loaded or accepted; the message says what to do."""


@dataclass(frozen=True)
class InstalledFeature:
    name: str
    distribution: str
    default_enabled: bool


@dataclass
class AgentPlugins:
    """The loaded plugins: `hook` calls every registered implementation."""

    manager: pluggy.PluginManager
    features: dict[str, Any] = field(default_factory=dict)
    tunnel: Any = None

    @property
    def hook(self) -> Any:
        return self.manager.hook


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs.AgentHookSpecs)
    return pm


def _instantiate(target: Any) -> Any:
    # An entry point may name a class (instantiated without arguments) or a ready object.
    return target() if inspect.isclass(target) else target


def _distribution(group: str, name: str) -> str:
    # stevedore's entry-point cache drops the distribution; importlib.metadata has it.
    for ep in importlib.metadata.entry_points(group=group, name=name):
        if ep.dist is not None:
            return ep.dist.name
    return "unknown distribution"


def installed_features() -> dict[str, InstalledFeature]:
    """Every feature plugin installed in this environment, without importing it twice."""
    found: dict[str, InstalledFeature] = {}
    mgr = ExtensionManager(FEATURE_GROUP, invoke_on_load=False,
                           on_load_failure_callback=_log_load_failure)
    for ext in mgr.extensions:
        default = bool(getattr(ext.plugin, "default_enabled", False))
        dist = _distribution(FEATURE_GROUP, ext.name)
        found[ext.name] = InstalledFeature(ext.name, dist, default)
    return found


def _log_load_failure(_mgr: Any, entry_point: Any, err: BaseException) -> None:
    LOG.error("plugin entry point %s failed to import: %s", entry_point, err)


def load_agent_plugins(enabled_features: Iterable[str], tunnel_type: str | None) -> AgentPlugins:
    """Load the tunnel driver (if `tunnel_type`) and the plugins of `enabled_features`.

    Raises `PluginError` naming the distribution to install when an enabled feature
    shipped by this project, or the tunnel driver, is missing.
    """
    enabled = set(enabled_features)
    plugins = AgentPlugins(new_plugin_manager())
    mgr = ExtensionManager(FEATURE_GROUP, invoke_on_load=False,
                           on_load_failure_callback=_raise_load_failure)
    available = {ext.name: ext for ext in mgr.extensions}
    for name in sorted(enabled):
        ext = available.get(name)
        if ext is None:
            dist = SHIPPED_FEATURES.get(name)
            if dist is not None:
                raise PluginError(
                    f"feature {name} is enabled but its plugin is not installed: "
                    f"pip install {dist} (or disable it: featureGates: {{{name}: false}})"
                )
            continue  # a feature implemented in the core, or without a plugin
        plugin = _instantiate(ext.plugin)
        plugins.manager.register(plugin, name=f"feature:{name}")
        plugins.features[name] = plugin
        LOG.info("feature plugin loaded name=%s distribution=%s", name,
                 _distribution(FEATURE_GROUP, name))
    if tunnel_type:
        plugins.tunnel = load_tunnel_driver(tunnel_type)
        plugins.manager.register(plugins.tunnel, name=f"tunnel:{tunnel_type}")
    return plugins


def _raise_load_failure(_mgr: Any, entry_point: Any, err: BaseException) -> None:
    raise PluginError(f"plugin entry point {entry_point} failed to import: {err}") from err


def load_tunnel_driver(tunnel_type: str) -> Any:
    try:
        driver = DriverManager(TUNNEL_GROUP, tunnel_type, invoke_on_load=False,
                               on_load_failure_callback=_raise_load_failure)
    except NoMatches:
        installed = sorted(ExtensionManager(TUNNEL_GROUP, invoke_on_load=False).names())
        if not installed:
            raise PluginError(
                f"tunnelType {tunnel_type} needs a tunnel driver: "
                f"pip install {TUNNELS_DISTRIBUTION}"
            ) from None
        raise PluginError(
            f"tunnelType {tunnel_type}: no such tunnel driver installed "
            f"(installed: {', '.join(installed)})"
        ) from None
    return _instantiate(driver.driver)


def validate_config(plugins: AgentPlugins, config: Any) -> None:
    """Ask every plugin to check the config; raise one `PluginError` listing all problems."""
    problems: list[str] = []
    for result in plugins.hook.antrea_validate_config(config=config):
        problems.extend(result or [])
    if problems:
        raise PluginError("invalid configuration: " + "; ".join(problems))
