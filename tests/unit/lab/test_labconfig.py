import pytest

from antrea_lab.labconfig import load_lab_config
from antrea_lab.labdir import LabError

pytestmark = pytest.mark.unit


def test_lab_config_defaults_and_values(tmp_path):
    f = tmp_path / "lab.yaml"
    f.write_text("nodes: 3\napiPort: 7443\nantreaAgent:\n  tunnelType: vxlan\n")
    cfg = load_lab_config(f)
    assert (cfg.nodes, cfg.cni, cfg.api_port) == (3, "bridge", 7443)
    assert cfg.antrea_agent == {"tunnelType": "vxlan"}
    assert cfg.underlay_subnets == 1
    f.write_text("")
    assert load_lab_config(f).nodes == 2
    f.write_text("nodes: 3\ncni: antrea\nunderlaySubnets: 2\n")
    assert load_lab_config(f).underlay_subnets == 2


@pytest.mark.parametrize(("text", "message"), [
    ("tunnelType: vxlan\n", "tunnelType: unknown key (allowed: nodes, cni, apiPort"),
    ("nodes: 0\n", "nodes: Input should be greater than or equal to 1"),
    ("underlaySubnets: 5\n", "underlaySubnets: Input should be less than or equal to 4"),
    ("cni: calico\n", "cni: Input should be 'bridge'"),
    ("antreaAgent:\n  tunnelType: vxlann\n",
     'antreaAgent: antrea-agent.conf: tunnelType: invalid value "vxlann"'),
    ("- a\n", "expected a mapping"),
])
def test_lab_config_errors_name_the_key(tmp_path, text, message):
    f = tmp_path / "lab.yaml"
    f.write_text(text)
    with pytest.raises(LabError) as err:
        load_lab_config(f)
    assert message in str(err.value)
