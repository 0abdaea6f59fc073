"""Field types and the base model shared by the agent and controller configuration models.

Validators raise errors that already carry the wording users see (allowed values, expected
form); loading.py only prefixes the file and the key path.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

_YAML_KINDS = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
               dict: "mapping", type(None): "null"}


def yaml_kind(value: Any) -> str:
    """The YAML word for a loaded value's type ("integer", "mapping", ...)."""
    return _YAML_KINDS.get(type(value), type(value).__name__)


class ConfigValueError(ValueError):
    """A cross-field check failed; ``key`` is the offending key, relative to the model raising it,
    in the file's own spelling (e.g. ``"tunnelType"`` or ``"portRange"``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class ConfBase(BaseModel):
    """Strict, frozen, closed-world model: YAML types must match, unknown keys are errors.

    Like Antrea, a key written with no value (YAML null) or an empty string where the default
    is a non-empty string means "use the default": the charts write such keys routinely.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaults: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            defaults[field.alias or name] = field.default
        out = {}
        for key, value in data.items():
            if key in defaults:
                if value is None:
                    continue
                default = defaults[key]
                if value == "" and isinstance(default, str) and default:
                    continue
            out[key] = value
        return out


def _choice_validator(allowed: tuple[str, ...]) -> Any:
    by_lower = {a.lower(): a for a in allowed}

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError(
                "choice_type",
                "expected one of {allowed}, got {kind} {value}",
                {"allowed": ", ".join(allowed), "kind": yaml_kind(value), "value": repr(value)},
            )
        # Antrea compares these mode names case-insensitively; keep its canonical spelling.
        canonical = by_lower.get(value.lower())
        if canonical is None:
            raise PydanticCustomError(
                "choice",
                'invalid value "{value}"; allowed: {allowed}',
                {"value": value, "allowed": ", ".join(allowed)},
            )
        return canonical

    return BeforeValidator(check)


def choice(literal: Any) -> Any:
    """``Annotated[literal, check]``: case-insensitive, and errors name the allowed values.

    One Literal per choice keeps static typing precise; the validator gives the message.
    """
    return Annotated[literal, _choice_validator(literal.__args__)]


def _range_check(lo: int, hi: int, zero_ok: bool = False) -> Any:
    def check(value: int) -> int:
        if zero_ok and value == 0:
            return value
        if not lo <= value <= hi:
            allowed = f"{lo}..{hi}" + (" (or 0 for the default)" if zero_ok else "")
            raise PydanticCustomError(
                "out_of_range", "{value} is out of range; allowed: {allowed}",
                {"value": value, "allowed": allowed},
            )
        return value

    return AfterValidator(check)


def int_range(lo: int, hi: int, zero_ok: bool = False) -> Any:
    """An integer in ``lo..hi`` (and 0 too when ``zero_ok``)."""
    return Annotated[int, _range_check(lo, hi, zero_ok)]


Port = int_range(1, 65535)
PortOrZero = int_range(1, 65535, zero_ok=True)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(text: str, family: int | None = None) -> IPNetwork:
    """Parse ``addr/len`` (host bits allowed, as Go's net.ParseCIDR); ValueError if invalid."""
    bad = f'invalid CIDR "{text}"; expected address/prefix-length, e.g. 10.96.0.0/12'
    if "/" not in text:
        raise ValueError(bad)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(bad) from None
    if family is not None and net.version != family:
        raise ValueError(f'"{text}" is not an IPv{family} CIDR')
    return net


def _cidr_check(family: int | None) -> Any:
    def check(value: str) -> str:
        try:
            parse_cidr(value, family)
        except ValueError as exc:
            raise PydanticCustomError("cidr", str(exc)) from None
        return value

    return AfterValidator(check)


Cidr = Annotated[str, _cidr_check(None)]
CidrV4 = Annotated[str, _cidr_check(4)]
CidrV6 = Annotated[str, _cidr_check(6)]


def _optional_cidr_check(family: int | None) -> Any:
    inner = _cidr_check(family).func

    def check(value: str) -> str:
        return value if value == "" else inner(value)

    return AfterValidator(check)


OptionalCidrV6 = Annotated[str, _optional_cidr_check(6)]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string such as ``"5s"``, ``"1m30s"`` or ``"250ms"``."""
    if text == "0":
        return timedelta(0)
    pos, seconds = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(
                f'invalid duration "{text}"; expected e.g. "5s", "1m30s", "250ms" '
                '(units: ns, us, ms, s, m, h)'
            )
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text:
        raise ValueError('invalid duration ""; expected e.g. "5s"')
    return timedelta(seconds=seconds)


def _duration_check(value: str) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None
    return value


Duration = Annotated[str, AfterValidator(_duration_check)]

TLS_MIN_VERSIONS: tuple[str, ...] = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")


def _tls_version_check(value: str) -> str:
    if value and value not in TLS_MIN_VERSIONS:
        raise PydanticCustomError(
            "choice", 'invalid value "{value}"; allowed: {allowed} (or empty for the default)',
            {"value": value, "allowed": ", ".join(TLS_MIN_VERSIONS)},
        )
    return value


TLSMinVersion = Annotated[str, AfterValidator(_tls_version_check)]


class ClientConnection(ConfBase):
    """How a process reaches an API server (Kubernetes' ClientConnectionConfiguration keys)."""

    kubeconfig: str = ""
    accept_content_types: str = Field("", alias="acceptContentTypes")
    content_type: str = Field("", alias="contentType")
    qps: float = 0.0
    burst: int = 0
