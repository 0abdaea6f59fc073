"""`antctl`: the command-line client of the Antrea agent and controller."""

from __future__ import annotations

import platform

import typer

import antrea_core

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Query the Antrea agent and controller.")


@app.command()
def version() -> None:
    """Print antctl's version."""
    typer.echo(f"antctlVersion: v{antrea_core.__version__}  python: {platform.python_version()}")


@app.command(name="get")
def get(resource: str) -> None:
    """Get controller/agent resources (networkpolicy, appliedtogroup, addressgroup, …)."""
    typer.echo(f"antctl get {resource}: the agent and controller query APIs are not "
               "implemented yet", err=True)
    raise typer.Exit(3)


def main() -> None:
    app()
