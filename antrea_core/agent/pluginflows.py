"""Feature plugins' flows through the hooks: `antrea_initial_flows` when the bridge is
ready, `antrea_initial_flows` + `antrea_replay_flows` after every ovs-vswitchd reconnect.

Each feature plugin's hooks are called on their own (not through one pluggy call that
merges every plugin's result) so that its flows carry its own feature cookie, and one
plugin failing during a replay does not keep the others' flows out. Replays run as one
reconnect listener per feature, in feature-name order, at `ReplayOrder.FEATURES`: after
NetworkPolicy, before the pipeline and pod forwarding flows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from antrea_core.agent.openflow.connection import ReplayOrder

log = logging.getLogger("antrea.agent.pluginflows")

INITIAL = "antrea_initial_flows"
REPLAY = "antrea_replay_flows"


class PluginFlowError(RuntimeError):
    """A plugin's flow hook failed or returned something the agent cannot install."""


class PluginFlows:
    """Installs and replays the flows feature plugins return from their flow hooks."""

    def __init__(self, pm: Any, features: Mapping[str, Any], bridge: Any, layout: Any,
                 context: Any) -> None:
        self.pm = pm
        self.features = dict(features)
        self.bridge = bridge
        self.layout = layout
        self.context = context
        self._detach: list[Callable[[], None]] = []

    def _impls(self, hook: str) -> list[tuple[str, Any]]:
        """(feature, hook function) of every implementation of `hook`, by feature name.
        An implementation by a plugin that is not a feature plugin has no cookie for its
        flows: refused."""
        by_plugin = {id(plugin): name for name, plugin in self.features.items()}
        found = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            feature = by_plugin.get(id(impl.plugin))
            if feature is None:
                raise PluginFlowError(
                    f"plugin {impl.plugin_name} implements {hook} but is not a feature "
                    "plugin (entry point group antrea.agent.features): its flows would "
                    "have no feature cookie")
            found.append((feature, impl.function))
        return sorted(found, key=lambda f: f[0])

    def _flows(self, feature: str, function: Any, hook: str) -> list[Any]:
        try:
            result = function(layout=self.layout, context=self.context)
        except Exception as exc:
            raise PluginFlowError(f"{hook} of feature {feature} failed: {exc}") from exc
        return list(result or [])

    def install(self) -> int:
        """Install every feature's initial flows (start-up; raises `PluginFlowError`
        naming the feature). Returns how many flows/groups were installed."""
        count = 0
        for feature, function in self._impls(INITIAL):
            items = self._flows(feature, function, INITIAL)
            try:
                self.bridge.install(items, feature)
            except Exception as exc:
                raise PluginFlowError(
                    f"installing the initial flows of feature {feature} failed: {exc}"
                ) from exc
            count += len(items)
            log.info("feature initial flows installed feature=%s count=%d", feature,
                     len(items))
        return count

    def replay(self, feature: str) -> None:
        """Reinstall one feature's initial and dynamic flows (vswitchd lost them)."""
        items: list[Any] = []
        for hook in (INITIAL, REPLAY):
            for name, function in self._impls(hook):
                if name == feature:
                    items += self._flows(feature, function, hook)
        self.bridge.install(items, feature)
        log.warning("feature flows replayed feature=%s count=%d", feature, len(items))

    def attach(self, conn: Any) -> None:
        """Replay each feature with flow hooks on `conn`'s reconnects."""
        features = sorted({f for hook in (INITIAL, REPLAY) for f, _ in self._impls(hook)})
        for feature in features:
            self._detach.append(conn.add_reconnect_listener(
                lambda _conn, f=feature: self.replay(f), order=ReplayOrder.FEATURES,
                name=f"plugin flows {feature}"))

    def detach(self) -> None:
        for detach in self._detach:
            detach()
        self._detach.clear()


def start(pm: Any, features: Mapping[str, Any], bridge: Any, layout: Any,
          context: Any) -> PluginFlows:
    """Install feature plugins' initial flows on `bridge` and replay them (with their
    dynamic flows) whenever its connection reconnects."""
    flows = PluginFlows(pm, features, bridge, layout, context)
    flows.attach(bridge.conn)
    flows.install()
    return flows
