"""`antrea-controller`: validates its configuration; NetworkPolicy computation comes next.

Until that lands it exits non-zero after the checks rather than pretending to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from antrea_core.config.loading import ConfigError, load_controller_config

EXIT_CONFIG = 2
EXIT_NOT_IMPLEMENTED = 3


def run(
    config: Annotated[Path | None, typer.Option("--config",
                                                help="antrea-controller.conf")] = None,
) -> None:
    try:
        load_controller_config(config)
    except ConfigError as exc:
        typer.echo(f"antrea-controller: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    typer.echo("antrea-controller: configuration is valid; NetworkPolicy computation and the "
               "agent watch API are not implemented yet", err=True)
    raise typer.Exit(EXIT_NOT_IMPLEMENTED)


def main() -> None:
    typer.run(run)
