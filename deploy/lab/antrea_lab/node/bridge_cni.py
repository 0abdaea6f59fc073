"""The lab's stand-in CNI before antrea-agent exists: Debian's bridge + host-local + portmap.

Written once the Node has podCIDR(s), like a CNI DaemonSet would. Pods on one node share
the ``cni0`` bridge (the node netns holds the gateway address), so they reach each other.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("antrea.lab.bridge_cni")

CONF_NAME = "10-lab-bridge.conflist"
NETWORK_NAME = "lab-bridge"


def bridge_conflist(pod_cidrs: list[str], ipam_data_dir: Path) -> dict[str, Any]:
    ranges = [[{"subnet": str(ipaddress.ip_network(c, strict=False))}] for c in pod_cidrs]
    routes = [
        {"dst": "::/0" if ipaddress.ip_network(c, strict=False).version == 6 else "0.0.0.0/0"}
        for c in pod_cidrs
    ]
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": ranges,
                    "routes": routes,
                    # Per node: host-local's default /var/lib/cni is shared by every lab.
                    "dataDir": str(ipam_data_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def install(conf_dir: Path, pod_cidrs: list[str], ipam_data_dir: Path) -> bool:
    """Write the conflist if missing or different; True if the file changed."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / CONF_NAME
    text = json.dumps(bridge_conflist(pod_cidrs, ipam_data_dir), indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    tmp = conf_dir / f".{CONF_NAME}.tmp"  # not *.conflist: never picked half-written
    tmp.write_text(text)
    tmp.replace(path)
    log.info("installed bridge CNI config path=%s podCIDRs=%s", path, pod_cidrs)
    return True
