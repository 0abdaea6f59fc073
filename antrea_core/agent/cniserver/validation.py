"""Turn one CNI invocation (environment + stdin) into a CNIRequest, or a CNIError.

Both sides run this: antrea-cni so a malformed call fails fast without the agent, and the
server because it must not trust its client. Rules are the CNI spec's (1.0.0 §Parameters).
"""

from __future__ import annotations

import json
import re
from typing import Any

from antrea_core.agent.cniserver.errors import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_ENVIRONMENT,
    INVALID_NETWORK_CONFIG,
    CNIError,
)
from antrea_core.plugins.context import CNIRequest

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
COMMANDS = ("ADD", "CHECK", "DEL")

# Spec: starts with an alphanumeric, then alphanumerics, '_', '.', '-'.
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
IFNAMSIZ = 16  # the kernel's limit, including the terminating NUL


def parse_network_config(raw: bytes | str) -> dict[str, Any]:
    """The stdin document as a dict; code 6 if it is not JSON, 7 if not an object."""
    try:
        doc = json.loads(raw or b"")
    except ValueError as exc:
        raise CNIError(DECODING_FAILURE, "failed to decode the network configuration",
                       str(exc)) from None
    if not isinstance(doc, dict):
        raise CNIError(INVALID_NETWORK_CONFIG, "the network configuration is not a JSON object")
    return doc


def check_version(config: dict[str, Any]) -> str:
    """The configuration's cniVersion if we speak it, else code 1 (or 7 when absent)."""
    version = config.get("cniVersion")
    if not version:
        raise CNIError(INVALID_NETWORK_CONFIG, "the network configuration has no cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(INCOMPATIBLE_VERSION, f"incompatible CNI version {version!r}",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    return str(version)


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS ``"K1=V1;K2=V2"`` as a dict; code 4 naming CNI_ARGS if a pair is malformed."""
    out: dict[str, str] = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CNIError(INVALID_ENVIRONMENT, "invalid CNI_ARGS",
                           f"{pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def check_ifname(ifname: str) -> None:
    if not ifname:
        raise CNIError(INVALID_ENVIRONMENT, "CNI_IFNAME is required")
    if (len(ifname) >= IFNAMSIZ or ifname in (".", "..")
            or any(c in "/:" or c.isspace() for c in ifname)):
        raise CNIError(INVALID_ENVIRONMENT, f"invalid CNI_IFNAME {ifname!r}",
                       "at most 15 characters, not '.' or '..', no '/', ':' or whitespace")


def build_request(
    command: str,
    *,
    container_id: str,
    netns: str,
    ifname: str,
    args: str,
    network_configuration: bytes | str,
) -> CNIRequest:
    """A validated CNIRequest for ADD, CHECK or DEL; raises CNIError with the spec code."""
    if command not in COMMANDS:
        raise CNIError(INVALID_ENVIRONMENT, f"unsupported CNI_COMMAND {command!r}",
                       f"expected one of {', '.join(COMMANDS)}")
    config = parse_network_config(network_configuration)
    check_version(config)
    if not container_id:
        raise CNIError(INVALID_ENVIRONMENT, "CNI_CONTAINERID is required")
    if not _CONTAINER_ID.match(container_id):
        raise CNIError(INVALID_ENVIRONMENT, f"invalid CNI_CONTAINERID {container_id!r}",
                       "must start with a letter or digit, then letters, digits, '_', '.', '-'")
    # DEL may come after the sandbox's netns is gone (spec: CNI_NETNS optional for DEL).
    if command != "DEL" and not netns:
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_NETNS is required for {command}")
    check_ifname(ifname)
    return CNIRequest(command=command, container_id=container_id, netns=netns, ifname=ifname,
                      args=parse_cni_args(args), config=config)
