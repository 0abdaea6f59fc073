"""Request validation shared by antrea-cni and the agent's CNI server (CNI spec codes)."""

from __future__ import annotations

import json

import pytest

from antrea_core.agent.cniserver.errors import CNIError
from antrea_core.agent.cniserver.validation import build_request, parse_cni_args

pytestmark = pytest.mark.unit

CONF = json.dumps({"cniVersion": "1.0.0", "name": "antrea", "type": "antrea"}).encode()
GOOD = dict(container_id="abc123", netns="/run/netns/pod", ifname="eth0",
            args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
            network_configuration=CONF)


def error_of(command: str, **changes) -> CNIError:
    with pytest.raises(CNIError) as info:
        build_request(command, **{**GOOD, **changes})
    return info.value


def test_valid_add_becomes_a_request_with_parsed_args_and_config():
    req = build_request("ADD", **GOOD)
    assert (req.command, req.container_id, req.netns, req.ifname) == (
        "ADD", "abc123", "/run/netns/pod", "eth0")
    assert req.args["K8S_POD_NAME"] == "web-0" and req.args["IgnoreUnknown"] == "1"
    assert req.config["name"] == "antrea"


@pytest.mark.parametrize("field,var", [("container_id", "CNI_CONTAINERID"),
                                       ("netns", "CNI_NETNS"), ("ifname", "CNI_IFNAME")])
def test_missing_variable_is_code_4_naming_it(field, var):
    err = error_of("ADD", **{field: ""})
    assert err.code == 4 and var in err.msg


def test_del_does_not_need_a_netns():
    assert build_request("DEL", **{**GOOD, "netns": ""}).netns == ""
    assert error_of("CHECK", netns="").code == 4


@pytest.mark.parametrize("bad", ["-abc", "a b", "a/b", "ab;c"])
def test_malformed_container_id_is_code_4(bad):
    err = error_of("ADD", container_id=bad)
    assert err.code == 4 and "CNI_CONTAINERID" in err.msg


@pytest.mark.parametrize("bad", ["a" * 16, ".", "..", "et/h0", "eth:0", "eth 0"])
def test_invalid_ifname_is_code_4(bad):
    err = error_of("ADD", ifname=bad)
    assert err.code == 4 and "CNI_IFNAME" in err.msg


def test_bad_json_is_code_6_and_non_object_code_7():
    assert error_of("ADD", network_configuration=b"{not json").code == 6
    assert error_of("ADD", network_configuration=b"[1, 2]").code == 7


def test_unsupported_cni_version_is_code_1_and_missing_version_code_7():
    err = error_of("ADD", network_configuration=b'{"cniVersion": "0.2.0"}')
    assert err.code == 1 and "0.2.0" in err.msg and "1.0.0" in err.details
    assert error_of("ADD", network_configuration=b'{"name": "x"}').code == 7


def test_unknown_command_is_code_4():
    assert error_of("FOO").code == 4


def test_cni_args_pairs_and_malformed_pair():
    assert parse_cni_args("A=1;;B=x=y") == {"A": "1", "B": "x=y"}
    with pytest.raises(CNIError) as info:
        parse_cni_args("A=1;oops")
    assert info.value.code == 4 and "CNI_ARGS" in info.value.msg


def test_error_document_has_the_spec_fields():
    doc = CNIError(11, "try later", "agent down").to_dict("0.4.0")
    assert doc == {"cniVersion": "0.4.0", "code": 11, "msg": "try later",
                   "details": "agent down"}
    assert "details" not in CNIError(4, "x").to_dict()
