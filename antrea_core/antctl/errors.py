"""antctl's failures, each with the exit code the command ends with."""

from __future__ import annotations

EXIT_NOT_FOUND = 1    # the resource or object does not exist
EXIT_USAGE = 2        # bad arguments (unknown resource, bad output format)
EXIT_UNAVAILABLE = 3  # the controller or agent could not be reached or failed


class AntctlError(Exception):
    """Printed as ``error: <message>`` on stderr; the command exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_NOT_FOUND) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class NotFound(AntctlError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_FOUND)


class Unavailable(AntctlError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_UNAVAILABLE)


class UsageError(AntctlError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)
