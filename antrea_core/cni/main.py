"""`antrea-cni`: the CNI binary kubelet executes (CNI spec 1.0.0).

VERSION is answered here. ADD/DEL/CHECK will be forwarded to the agent over gRPC; until
the agent's CNI server exists they fail with a spec-shaped error, never a fake success.
"""

from __future__ import annotations

import json
import os
import sys

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
# Spec error codes: 4 = invalid necessary environment variables, 6 = failed to decode.
ERR_INVALID_ENV = 4
ERR_DECODE = 6
ERR_NOT_IMPLEMENTED = 100  # >= 100: plugin-specific


def _error(code: int, msg: str, details: str = "", version: str = "1.0.0") -> int:
    out = {"cniVersion": version, "code": code, "msg": msg}
    if details:
        out["details"] = details
    sys.stdout.write(json.dumps(out) + "\n")
    return 1


def main() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    raw = sys.stdin.read() if command != "VERSION" else ""
    version = "1.0.0"
    if raw:
        try:
            version = json.loads(raw).get("cniVersion", version)
        except ValueError as exc:
            return _error(ERR_DECODE, "invalid network configuration JSON", str(exc))
    if command == "VERSION":
        sys.stdout.write(json.dumps({"cniVersion": "1.0.0",
                                     "supportedVersions": list(SUPPORTED_VERSIONS)}) + "\n")
        return 0
    if command not in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
        return _error(ERR_INVALID_ENV, f"unknown CNI_COMMAND {command!r}",
                      "expected ADD, DEL, CHECK or VERSION", version)
    return _error(ERR_NOT_IMPLEMENTED, "antrea-cni: the agent's CNI server is not implemented "
                  "yet", f"CNI_COMMAND={command}", version)


if __name__ == "__main__":
    sys.exit(main())
