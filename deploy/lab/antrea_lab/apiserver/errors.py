"""API errors, translated once into Kubernetes `Status` objects at the HTTP boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One invalid field: `path` is the dotted field path (`spec.ports[0].port`)."""

    path: str
    message: str
    reason: str = "FieldValueInvalid"


@dataclass
class APIError(Exception):
    """An error the API answers with: HTTP `code`, Status `reason`, and optional details."""

    code: int
    reason: str
    message: str
    kind: str | None = None
    name: str | None = None
    group: str | None = None
    causes: list[FieldError] = field(default_factory=list)
    retry_after: int | None = None

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group is not None:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {"reason": c.reason, "message": c.message, "field": c.path} for c in self.causes
            ]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            status["details"] = details
        return status


def not_found(resource: str, name: str, group: str = "") -> APIError:
    return APIError(404, "NotFound", f'{resource} "{name}" not found', kind=resource,
                    name=name, group=group)


def already_exists(resource: str, name: str, group: str = "") -> APIError:
    return APIError(409, "AlreadyExists", f'{resource} "{name}" already exists', kind=resource,
                    name=name, group=group)


def conflict(resource: str, name: str, why: str, group: str = "") -> APIError:
    return APIError(409, "Conflict",
                    f'Operation cannot be fulfilled on {resource} "{name}": {why}',
                    kind=resource, name=name, group=group)


def invalid(kind: str, name: str, causes: list[FieldError], group: str = "") -> APIError:
    summary = ", ".join(f"{c.path}: {c.message}" for c in causes)
    return APIError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', kind=kind,
                    name=name, group=group, causes=causes)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)
