"""Validation shared by every kind: object metadata, names, labels."""

from __future__ import annotations

import re
from typing import Any

from .errors import FieldError
from .registry import ResourceInfo

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
             "or '-', and must start and end with an alphanumeric character")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric "
                 "character")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
               "start with an alphabetic character, and end with an alphanumeric character")


def dns1123_label(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _DNS1123_LABEL.match(value) else LABEL_MSG


def dns1123_subdomain(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    return None if _DNS1123_SUBDOMAIN.match(value) else SUBDOMAIN_MSG


def dns1035_label(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _DNS1035_LABEL.match(value) else DNS1035_MSG


def path_segment(value: str) -> str | None:
    if value in (".", ".."):
        return f"may not be '{value}'"
    for bad in ("/", "%"):
        if bad in value:
            return f"may not contain '{bad}'"
    return None


# How Kubernetes validates each kind's name; subdomain is the default.
_NAME_RULES = {
    "namespaces": dns1123_label,
    "services": dns1035_label,
    "clusterroles": path_segment,
    "clusterrolebindings": path_segment,
    "roles": path_segment,
    "rolebindings": path_segment,
}


def name_rule(info: ResourceInfo):  # type: ignore[no-untyped-def]
    if not info.builtin:
        return path_segment
    return _NAME_RULES.get(info.resource, dns1123_subdomain)


def _qualified_key(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and dns1123_subdomain(prefix):
        return "prefix part " + SUBDOMAIN_MSG
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (at most 63 characters)")
    return None


def validate_metadata(info: ResourceInfo, obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return [FieldError("metadata", "Required value", "FieldValueRequired")]
    name = md.get("name")
    if not name:
        errs.append(FieldError("metadata.name", "Required value: name or generateName is "
                                                 "required", "FieldValueRequired"))
    elif not isinstance(name, str):
        errs.append(FieldError("metadata.name", "Invalid value: must be a string"))
    else:
        msg = name_rule(info)(name)
        if msg:
            errs.append(FieldError("metadata.name", f'Invalid value: "{name}": {msg}'))
    labels = md.get("labels") or {}
    if not isinstance(labels, dict):
        errs.append(FieldError("metadata.labels", "Invalid value: must be a map"))
        labels = {}
    for key, value in labels.items():
        msg = _qualified_key(key)
        if msg:
            errs.append(FieldError("metadata.labels", f'Invalid value: "{key}": {msg}'))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            errs.append(FieldError("metadata.labels",
                                   f'Invalid value: "{value}": a valid label must be an empty '
                                   "string or consist of alphanumeric characters, '-', '_' or "
                                   "'.', and must start and end with an alphanumeric character"))
    annotations = md.get("annotations") or {}
    if not isinstance(annotations, dict):
        errs.append(FieldError("metadata.annotations", "Invalid value: must be a map"))
        annotations = {}
    for key, value in annotations.items():
        msg = _qualified_key(key)
        if msg:
            errs.append(FieldError("metadata.annotations", f'Invalid value: "{key}": {msg}'))
        if not isinstance(value, str):
            errs.append(FieldError(f"metadata.annotations[{key}]",
                                   "Invalid value: must be a string"))
    for field in ("finalizers",):
        value = md.get(field)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            errs.append(FieldError(f"metadata.{field}", "Invalid value: must be a list of "
                                                         "strings"))
    return errs
