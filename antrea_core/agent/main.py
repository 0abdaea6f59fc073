"""`antrea-agent`: start-up checks (configuration, plugins, pipeline), then the datapath.

The datapath (CNI server, OVS bridge, OpenFlow) is not implemented yet: after the checks
the agent says so and exits non-zero rather than pretending to run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.pipeline import PipelineError, PipelineLayout
from antrea_core.config.loading import ConfigError, load_agent_config
from antrea_core.plugins.loading import AgentPlugins, PluginError, load_agent_plugins
from antrea_core.plugins.loading import validate_config as validate_plugin_config

LOG = logging.getLogger("antrea.agent")
EXIT_CONFIG = 2
EXIT_NOT_IMPLEMENTED = 3


def prepare(config_path: Path | None) -> tuple[object, AgentPlugins, PipelineLayout]:
    """Everything the agent checks before touching the node; raises on bad input."""
    config = load_agent_config(config_path)
    tunnel = config.tunnel_type if config.tunnel_enabled else None
    plugins = load_agent_plugins(config.enabled_features(), tunnel)
    validate_plugin_config(plugins, config)
    specs = list(core_tables())
    for declared in plugins.hook.antrea_pipeline_tables():
        specs.extend(declared or [])
    return config, plugins, PipelineLayout.build(specs)


def run(
    config: Annotated[Path | None, typer.Option("--config", help="antrea-agent.conf")] = None,
    print_pipeline: Annotated[bool, typer.Option(help="print the table layout and exit")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                                                   "%(message)s")
    try:
        _cfg, plugins, layout = prepare(config)
    except (ConfigError, PluginError, PipelineError) as exc:
        typer.echo(f"antrea-agent: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    LOG.info("configuration valid features=%s tunnel=%s tables=%d",
             ",".join(sorted(plugins.features)) or "-",
             getattr(plugins.tunnel, "port_type", "-"), len(layout))
    if print_pipeline:
        for table in layout.tables():
            typer.echo(f"{table.table_id:>3}  {table.spec.stage.name:<18} {table.name}")
        return
    typer.echo("antrea-agent: configuration and plugins are valid; the datapath (CNI server, "
               "OVS bridge, OpenFlow pipeline) is not implemented yet", err=True)
    raise typer.Exit(EXIT_NOT_IMPLEMENTED)


def main() -> None:
    typer.run(run)


if __name__ == "__main__":
    sys.exit(main())
