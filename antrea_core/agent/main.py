"""`antrea-agent`: start-up checks (configuration, plugins, pipeline), then the agent.

    antrea-agent --config FILE [--kubeconfig FILE] [--node-name NAME]
                 [--cni-conf-dir DIR --cni-bin-dir DIR] [--state-dir DIR]

Runs until SIGTERM/SIGINT. The node name comes from ``--node-name`` or ``NODE_NAME`` (the
downward API in a DaemonSet); the kubeconfig from ``--kubeconfig``, else
``clientConnection.kubeconfig``, else the in-cluster ServiceAccount.

Exit codes: 0 stopped by a signal; 1 failed at run time; 2 bad configuration or
arguments.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.pipeline import PipelineError, PipelineLayout
from antrea_core.agent.podflows import FlowInstallerFactory
from antrea_core.config.loading import (
    AGENT_CONF_NAME,
    ConfigError,
    ConfigIssue,
    load_agent_config,
)
from antrea_core.plugins.loading import AgentPlugins, PluginError, load_agent_plugins
from antrea_core.plugins.loading import validate_config as validate_plugin_config
from antrea_core.signals import stop_on_signals, wait_until_stopped

LOG = logging.getLogger("antrea.agent")
EXIT_RUNTIME = 1
EXIT_CONFIG = 2

DEFAULT_STATE_DIR = Path("/var/lib/antrea-agent")


def prepare(config_path: Path | None) -> tuple[Any, AgentPlugins, PipelineLayout]:
    """Everything the agent checks before touching the node; raises on bad input."""
    config = load_agent_config(config_path)
    if config.traffic_encap_mode == "networkPolicyOnly":
        # Valid for Antrea, but this agent cannot chain after another CNI yet: refusing
        # beats networking pods in a mode nobody asked for.
        raise ConfigError(str(config_path or AGENT_CONF_NAME), [ConfigIssue(
            "networkPolicyOnly (chained after another CNI) is not implemented yet; use "
            "encap, noEncap or hybrid", key="trafficEncapMode")])
    tunnel = config.tunnel_type if config.tunnel_enabled else None
    plugins = load_agent_plugins(config.enabled_features(), tunnel)
    validate_plugin_config(plugins, config)
    specs = list(core_tables())
    for declared in plugins.hook.antrea_pipeline_tables():
        specs.extend(declared or [])
    return config, plugins, PipelineLayout.build(specs)


def flow_installer_factory() -> FlowInstallerFactory:
    """The OpenFlow pod-networking datapath (imported late: it needs os-ken)."""
    from antrea_core.agent.datapath import OpenFlowDatapath

    return OpenFlowDatapath


def run(
    config: Annotated[Path | None, typer.Option("--config", help="antrea-agent.conf")] = None,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", help="kubeconfig (default: clientConnection.kubeconfig, "
        "else in-cluster)")] = None,
    node_name: Annotated[str | None, typer.Option(
        "--node-name", envvar="NODE_NAME", help="this Node's name")] = None,
    cni_conf_dir: Annotated[Path | None, typer.Option(
        "--cni-conf-dir", help="install 10-antrea.conflist here")] = None,
    cni_bin_dir: Annotated[Path | None, typer.Option(
        "--cni-bin-dir", help="install the antrea CNI plugin here")] = None,
    state_dir: Annotated[Path, typer.Option(
        "--state-dir", help="persistent agent state (IPAM)")] = DEFAULT_STATE_DIR,
    print_pipeline: Annotated[bool, typer.Option(help="print the table layout and exit")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                                                   "%(message)s")
    try:
        cfg, plugins, layout = prepare(config)
    except (ConfigError, PluginError, PipelineError) as exc:
        _exit(EXIT_CONFIG, str(exc))
    LOG.info("configuration valid features=%s tunnel=%s tables=%d",
             ",".join(sorted(plugins.features)) or "-",
             getattr(plugins.tunnel, "port_type", "-"), len(layout))
    if print_pipeline:
        for table in layout.tables():
            typer.echo(f"{table.table_id:>3}  {table.spec.stage.name:<18} {table.name}")
        return
    factory = flow_installer_factory()
    if not node_name:
        _exit(EXIT_CONFIG, "the node name is required: --node-name or NODE_NAME")
    code = serve(cfg, plugins, layout, factory, node_name=node_name,
                 kubeconfig=kubeconfig or cfg.client_connection.kubeconfig or None,
                 cni_conf_dir=cni_conf_dir, cni_bin_dir=cni_bin_dir, state_dir=state_dir)
    if code:
        raise typer.Exit(code)


def serve(cfg: Any, plugins: AgentPlugins, layout: PipelineLayout,
          factory: FlowInstallerFactory, *, node_name: str, kubeconfig: str | None,
          cni_conf_dir: Path | None, cni_bin_dir: Path | None, state_dir: Path) -> int:
    """Start the agent and block until SIGTERM/SIGINT; returns the exit code."""
    # Imported here: the checks above must work without the datapath's dependencies.
    from antrea_core.agent.agent import Agent, AgentOptions
    from antrea_core.agent.nodeinfo import KubeClusterView, api_client

    stop = stop_on_signals()
    try:
        api = api_client(kubeconfig, cfg.kube_api_server_override)
        agent = Agent(cfg, plugins, layout, KubeClusterView(api, node_name), factory,
                      AgentOptions(node_name=node_name, state_dir=state_dir,
                                   cni_conf_dir=cni_conf_dir, cni_bin_dir=cni_bin_dir))
        agent.start(stop)
    except Exception as exc:
        if stop.is_set():
            LOG.info("stopped during start-up: %s", exc)
            return 0
        LOG.exception("agent failed to start")
        typer.echo(f"antrea-agent: {exc}", err=True)
        return EXIT_RUNTIME
    try:
        wait_until_stopped(stop)
    finally:
        agent.stop()
    return 0


def _exit(code: int, message: str) -> NoReturn:
    typer.echo(f"antrea-agent: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    typer.run(run)


if __name__ == "__main__":
    sys.exit(main())
