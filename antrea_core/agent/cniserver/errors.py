"""CNIError and the error codes of the CNI spec (1.0.0 / 1.1.0 §Error).

Codes 1-99 are the spec's; 100 and above are ours. A handler raises CNIError; the server
turns it into the gRPC answer and antrea-cni prints it as the spec's error document.
"""

from __future__ import annotations

from typing import Any

# Spec codes.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51

# Ours (>= 100), same numbers as Antrea's where Antrea has one.
INTERNAL_ERROR = 100
IPAM_FAILURE = 101
INTERFACE_FAILURE = 102
CHECK_FAILURE = 103


class CNIError(Exception):
    """A CNI command failed; ``code`` is a spec code (or ours >= 100), ``msg`` says what
    failed, ``details`` carries the underlying cause."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str = "1.0.0") -> dict[str, Any]:
        """The spec's error document."""
        doc: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return doc
