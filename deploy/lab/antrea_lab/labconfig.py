"""`antrea-lab up --config FILE`: the lab's own settings, checked before anything starts.

```yaml
nodes: 3                 # 1..20
cni: bridge              # bridge (Debian's bridge + host-local) until antrea-agent lands
apiPort: 6443            # 0: 6443 if free, else any free port
underlaySubnets: 1       # 1..4: nodes spread over routed subnets (cni antrea only)
antreaAgent:             # antrea-agent.conf for every node, validated now
  tunnelType: vxlan
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from antrea_lab.labdir import LabError


class LabConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    nodes: int = Field(2, ge=1, le=20)
    cni: Literal["bridge", "antrea"] = "bridge"
    api_port: int = Field(0, ge=0, le=65535, alias="apiPort")
    underlay_subnets: int = Field(1, ge=1, le=4, alias="underlaySubnets")
    antrea_agent: dict[str, Any] = Field(default_factory=dict, alias="antreaAgent")


def load_lab_config(path: Path) -> LabConfig:
    """Read and check FILE; every problem names its key. The antreaAgent section is
    checked with the agent's own loader, so the lab refuses what the agent would."""
    from antrea_core.config.loading import ConfigError, load_agent_config

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise LabError(f"{path}: expected a mapping of lab settings")
    try:
        config = LabConfig.model_validate(data)
    except ValidationError as exc:
        allowed = ", ".join(f.alias or n for n, f in LabConfig.model_fields.items())
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: "
            + (f"unknown key (allowed: {allowed})" if err["type"] == "extra_forbidden"
               else err["msg"])
            for err in exc.errors()
        )
        raise LabError(f"{path}: {problems}") from None
    try:
        load_agent_config(None, overrides=config.antrea_agent)
    except ConfigError as exc:
        raise LabError(f"{path}: antreaAgent: {exc}") from None
    return config
