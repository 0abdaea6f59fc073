"""antrea-agent's command line: it refuses to start without a pod flow installer."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from antrea_core.agent import main
from antrea_core.agent.agent import Agent, AgentOptions
from antrea_core.agent.podflows import FlowInstallerUnavailable
from antrea_core.config.agent import AgentConfig

pytestmark = pytest.mark.unit


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "antrea-agent.conf"
    path.write_text("ovsDatapathType: netdev\n")
    return path


def invoke(*args: str, env: dict[str, str] | None = None):
    import typer

    app = typer.Typer()
    app.command()(main.run)
    return CliRunner().invoke(app, list(args), env=env)


def test_the_node_name_is_required(conf, monkeypatch):
    monkeypatch.setattr(main, "flow_installer_factory", lambda: lambda runtime: None)
    result = invoke("--config", str(conf), env={"NODE_NAME": ""})
    assert result.exit_code == main.EXIT_CONFIG and "NODE_NAME" in result.output


def test_the_agent_object_refuses_to_exist_without_a_flow_installer(tmp_path: Path):
    with pytest.raises(FlowInstallerUnavailable):
        Agent(AgentConfig(), None, None, None, None,  # type: ignore[arg-type]
              AgentOptions(node_name="n1", state_dir=tmp_path))
