"""CustomResourceDefinitions: CRD validation and structural-schema prune/default/validate.

Custom resources are handled the way kube-apiserver handles them: defaults from the
version's `openAPIV3Schema` are applied, fields the schema does not declare are pruned,
then the object is validated and every failure is reported with kube's field path and
wording (`spec.ports[0].port: Invalid value: ...`), so clients and tests that match on
messages behave the same against the lab. CEL rules (`x-kubernetes-validations`) are not
evaluated; `unsupported_features` names them so the server can say so once.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import logging
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from .errors import FieldError

log = logging.getLogger("antrea_lab.apiserver.schema")

TYPES = ("object", "array", "string", "integer", "number", "boolean")
SCOPES = ("Cluster", "Namespaced")
ROOT_KEPT = ("apiVersion", "kind", "metadata")
PRINTER_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
# Keys the lab does not act on; listed by unsupported_features().
UNSUPPORTED_KEYS = ("x-kubernetes-validations",)

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ---------------------------------------------------------------------------- formatting

def _go_value(v: Any) -> str:
    """A value the way kube's field errors print it (strings quoted, JSON otherwise)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, int | float):
        return json.dumps(v)
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _body(path: str) -> str:
    return path or "body"


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, f"Invalid value: {_go_value(value)}: {detail}", "FieldValueInvalid")


def _required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, f"Required value: {detail}" if detail else "Required value",
                      "FieldValueRequired")


def _type_error(path: str, value: Any, expected: str) -> FieldError:
    actual = _json_type(value)
    return FieldError(path, f'Invalid value: "{actual}": {_body(path)} in body must be of type '
                            f'{expected}: "{actual}"', "FieldValueTypeInvalid")


def _not_supported(path: str, value: Any, allowed: list[Any]) -> FieldError:
    supported = ", ".join(_go_value(a) for a in allowed)
    return FieldError(path, f"Unsupported value: {_go_value(value)}: supported values: "
                            f"{supported}", "FieldValueNotSupported")


# ---------------------------------------------------------------------------- CRD objects

def default_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """A copy of `crd` with the defaults kube fills in (listKind, singular, conversion)."""
    out = copy.deepcopy(crd)
    spec = out.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = names.get("kind")
    if kind:
        names.setdefault("listKind", f"{kind}List")
        names.setdefault("singular", kind.lower())
    spec.setdefault("conversion", {"strategy": "None"})
    return out


def validate_crd(crd: dict[str, Any]) -> list[FieldError]:
    """Field errors of a CustomResourceDefinition (after `default_crd`-style defaults)."""
    errs: list[FieldError] = []
    meta = crd.get("metadata") or {}
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    if not group:
        errs.append(_required("spec.group"))
    elif "." not in group:
        errs.append(_invalid("spec.group", group, "should be a domain with at least one dot"))
    elif not _DNS_SUBDOMAIN.match(group):
        errs.append(_invalid("spec.group", group,
                             "a lowercase RFC 1123 subdomain must consist of lower case "
                             "alphanumeric characters, '-' or '.'"))
    plural, kind = names.get("plural") or "", names.get("kind") or ""
    for key in ("plural", "singular"):
        value = names.get(key)
        if key == "plural" and not value:
            errs.append(_required("spec.names.plural"))
        elif value and not _DNS_LABEL.match(value):
            errs.append(_invalid(f"spec.names.{key}", value,
                                 "a lowercase RFC 1123 label must consist of lower case "
                                 "alphanumeric characters or '-'"))
    if not kind:
        errs.append(_required("spec.names.kind"))
    list_kind = names.get("listKind")
    if list_kind is not None and not list_kind:
        errs.append(_required("spec.names.listKind"))
    if kind and list_kind and kind == list_kind:
        errs.append(_invalid("spec.names.listKind", list_kind, "kind and listKind cannot be "
                                                               "the same"))
    if plural and group and meta.get("name") != f"{plural}.{group}":
        errs.append(_invalid("metadata.name", meta.get("name", ""),
                             'must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if not scope:
        errs.append(_required("spec.scope"))
    elif scope not in SCOPES:
        errs.append(_not_supported("spec.scope", scope, list(SCOPES)))
    errs.extend(_validate_versions(spec))
    return errs


def _validate_versions(spec: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        return [_required("spec.versions", "must have exactly one version marked as storage "
                                           "version")]
    seen: set[str] = set()
    storage = 0
    for i, v in enumerate(versions):
        vp = _index("spec.versions", i)
        name = v.get("name") or ""
        if not name:
            errs.append(_required(f"{vp}.name"))
        elif name in seen:
            errs.append(FieldError(f"{vp}.name", f"Duplicate value: {_go_value(name)}",
                                   "FieldValueDuplicate"))
        elif not _DNS_LABEL.match(name):
            errs.append(_invalid(f"{vp}.name", name, "a DNS-1035 label must consist of lower "
                                                     "case alphanumeric characters or '-'"))
        seen.add(name)
        for flag in ("served", "storage"):
            if not isinstance(v.get(flag), bool):
                errs.append(_required(f"{vp}.{flag}"))
        if v.get("storage") is True:
            storage += 1
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        sp = f"{vp}.schema.openAPIV3Schema"
        if schema is None:
            errs.append(_required(sp, "schemas are required"))
        else:
            errs.extend(_structural(schema, sp, root=True))
        for j, col in enumerate(v.get("additionalPrinterColumns") or []):
            errs.extend(_validate_printer_column(col, _index(f"{vp}.additionalPrinterColumns", j)))
    if storage != 1:
        errs.append(_invalid("spec.versions", versions_names(versions),
                             "must have exactly one version marked as storage version"))
    if not any(v.get("served") is True for v in versions):
        errs.append(_invalid("spec.versions", versions_names(versions),
                             "must have at least one version marked as served"))
    return errs


def versions_names(versions: list[dict[str, Any]]) -> list[str]:
    return [v.get("name", "") for v in versions]


def _validate_printer_column(col: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    if not col.get("name"):
        errs.append(_required(f"{path}.name"))
    if not col.get("jsonPath"):
        errs.append(_required(f"{path}.jsonPath"))
    ctype = col.get("type")
    if not ctype:
        errs.append(_required(f"{path}.type"))
    elif ctype not in PRINTER_COLUMN_TYPES:
        errs.append(_not_supported(f"{path}.type", ctype, list(PRINTER_COLUMN_TYPES)))
    return errs


def _structural(s: Any, path: str, root: bool = False, in_value_validation: bool = False,
                where: str = "for specified object fields") -> list[FieldError]:
    """Kube's structural-schema rules, the subset that decides whether pruning is defined.

    Inside allOf/anyOf/oneOf/not (value validations) types may be omitted.
    """
    if not isinstance(s, dict):
        return [_invalid(path, s, "must be an object")]
    errs: list[FieldError] = []
    stype = s.get("type")
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    if stype is not None and stype not in TYPES:
        errs.append(_not_supported(f"{path}.type", stype, list(TYPES)))
    if int_or_string and stype:
        errs.append(_invalid(f"{path}.type", stype,
                             "must be empty if x-kubernetes-int-or-string is true"))
    if not in_value_validation and not stype and not int_or_string and not preserve:
        errs.append(_required(f"{path}.type",
                              f"must not be empty {'at the root' if root else where}"))
    if root and stype and stype != "object":
        errs.append(_invalid(f"{path}.type", stype, "must be object at the root"))
    if "$ref" in s:
        errs.append(FieldError(f"{path}.$ref", "Forbidden: $ref is not supported",
                               "FieldValueForbidden"))
    for name, sub in (s.get("properties") or {}).items():
        errs.extend(_structural(sub, f"{path}.properties[{name}]",
                                in_value_validation=in_value_validation))
    additional = s.get("additionalProperties")
    if isinstance(additional, dict):
        if s.get("properties"):
            errs.append(FieldError(f"{path}.additionalProperties",
                                   "Forbidden: additionalProperties and properties are "
                                   "mutual exclusive", "FieldValueForbidden"))
        errs.extend(_structural(additional, f"{path}.additionalProperties",
                                in_value_validation=in_value_validation))
    items = s.get("items")
    if isinstance(items, list):
        errs.append(FieldError(f"{path}.items", "Forbidden: items must be a schema object "
                               "and not an array", "FieldValueForbidden"))
    elif items is not None:
        errs.extend(_structural(items, f"{path}.items", in_value_validation=in_value_validation,
                                where="for specified array items"))
    elif stype == "array" and not in_value_validation:
        errs.append(_required(f"{path}.items", "must be specified"))
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(key) or []):
            errs.extend(_structural(sub, f"{path}.{key}[{i}]", in_value_validation=True))
    if isinstance(s.get("not"), dict):
        errs.extend(_structural(s["not"], f"{path}.not", in_value_validation=True))
    return errs


def _crd_version(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == version:
            return v
    return None


def version_schema(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The openAPIV3Schema of `version` (per-version, or the legacy top-level one)."""
    v = _crd_version(crd, version)
    if v is None:
        return None
    schema = (v.get("schema") or {}).get("openAPIV3Schema")
    if schema is None:
        schema = ((crd.get("spec") or {}).get("validation") or {}).get("openAPIV3Schema")
    return schema


def printer_columns(crd: dict[str, Any], version: str) -> list[dict[str, Any]]:
    """The additionalPrinterColumns of `version` (per-version, or the legacy top-level)."""
    v = _crd_version(crd, version)
    if v is None:
        return []
    cols = v.get("additionalPrinterColumns")
    if cols is None:
        cols = (crd.get("spec") or {}).get("additionalPrinterColumns")
    return list(cols or [])


def unsupported_features(schema: dict[str, Any]) -> list[str]:
    """'<keyword> at <schema path>' for every keyword the lab ignores (CEL rules, …)."""
    found: list[str] = []
    for path, node in _walk_schema(schema, ""):
        for key in UNSUPPORTED_KEYS:
            if key in node:
                found.append(f"{key} at {path or '<root>'}")
    return found


def _walk_schema(s: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(s, dict):
        return
    yield path, s
    for name, sub in (s.get("properties") or {}).items():
        yield from _walk_schema(sub, _child(path, name))
    if isinstance(s.get("additionalProperties"), dict):
        yield from _walk_schema(s["additionalProperties"], _child(path, "*"))
    if isinstance(s.get("items"), dict):
        yield from _walk_schema(s["items"], f"{path}[*]")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(key) or []):
            yield from _walk_schema(sub, f"{path}({key}[{i}])")
    if isinstance(s.get("not"), dict):
        yield from _walk_schema(s["not"], f"{path}(not)")


# ---------------------------------------------------------------------------- objects

def prune_default_validate(schema: dict[str, Any], obj: dict[str, Any]
                           ) -> tuple[dict[str, Any], list[FieldError]]:
    """Default, prune and validate a custom resource; returns (new object, field errors).

    The input is not modified. apiVersion, kind and metadata at the root are kept and
    not validated here (the server checks metadata like any other object's).
    """
    out = copy.deepcopy(obj)
    _default(schema, out)
    _prune(schema, out, root=True)
    errs: list[FieldError] = []
    if isinstance(out, dict):
        body = {k: v for k, v in out.items() if k not in ROOT_KEPT}
        root = dict(schema)
        # "required: [metadata]" and friends would always fail on the trimmed body.
        root["required"] = [r for r in schema.get("required") or [] if r not in ROOT_KEPT]
        root["properties"] = {k: v for k, v in (schema.get("properties") or {}).items()
                              if k not in ROOT_KEPT}
        _validate(root, body, "", errs)
    else:
        errs.append(_type_error("", out, "object"))
    return out, errs


def _default(s: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        props = s.get("properties") or {}
        for name, sub in props.items():
            if not isinstance(sub, dict):
                continue
            if "default" in sub and (name not in value or
                                     (value[name] is None and not sub.get("nullable"))):
                value[name] = copy.deepcopy(sub["default"])
        for name, v in value.items():
            if name in props and isinstance(props[name], dict):
                _default(props[name], v)
            elif isinstance(s.get("additionalProperties"), dict):
                _default(s["additionalProperties"], v)
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        for item in value:
            _default(s["items"], item)


def _prune(s: dict[str, Any], value: Any, root: bool = False, path: str = "",
           removed: list[str] | None = None) -> None:
    """Drop undeclared fields in place; `removed` collects their paths (unknown fields)."""
    if isinstance(value, dict):
        props = s.get("properties") or {}
        additional = s.get("additionalProperties")
        preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = s.get("x-kubernetes-embedded-resource") is True
        for name in list(value):
            sub = props.get(name)
            child = _child(path, name)
            if isinstance(sub, dict):
                # Non-nullable nulls without a default are dropped, as kube does.
                if value[name] is None and not sub.get("nullable"):
                    del value[name]
                    continue
                _prune(sub, value[name], path=child, removed=removed)
            elif isinstance(additional, dict):
                _prune(additional, value[name], path=child, removed=removed)
            elif not (additional is True or preserve
                      or ((root or embedded) and name in ROOT_KEPT)):
                del value[name]
                if removed is not None:
                    removed.append(child)
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        for i, item in enumerate(value):
            _prune(s["items"], item, path=_index(path, i), removed=removed)


def unknown_fields(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """Paths of fields the schema does not declare (`spec.junk`), for fieldValidation.

    kube rejects them with `strict decoding error: unknown field "spec.junk"` under
    fieldValidation=Strict and warns under Warn; pruning drops them either way.
    """
    removed: list[str] = []
    _prune(schema, copy.deepcopy(obj), root=True, removed=removed)
    return removed


def _check_type(s: dict[str, Any], value: Any, path: str, errs: list[FieldError]) -> bool:
    """Append a type error if `value` does not have the schema's type; True if it does."""
    if value is None:
        if s.get("nullable") is True:
            return True
        expected = s.get("type")
        if expected or s.get("x-kubernetes-int-or-string"):
            errs.append(_type_error(path, value, expected or "integer,string"))
            return False
        return True
    if s.get("x-kubernetes-int-or-string") is True:
        if _json_type(value) not in ("integer", "string"):
            errs.append(_type_error(path, value, "integer,string"))
            return False
        return True
    expected = s.get("type")
    if not expected:
        return True
    actual = _json_type(value)
    ok = actual == expected or (expected == "number" and actual == "integer")
    if not ok:
        errs.append(_type_error(path, value, expected))
    return ok


def _validate(s: dict[str, Any], value: Any, path: str, errs: list[FieldError]) -> None:
    if not _check_type(s, value, path, errs) or value is None:
        return
    if "enum" in s and value not in s["enum"]:
        errs.append(_not_supported(path, value, list(s["enum"])))
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float):
        _validate_number(s, value, path, errs)
    elif isinstance(value, str):
        _validate_string(s, value, path, errs)
    elif isinstance(value, list):
        _validate_array(s, value, path, errs)
    elif isinstance(value, dict):
        _validate_object(s, value, path, errs)
    _validate_combinators(s, value, path, errs)


def _validate_number(s: dict[str, Any], v: int | float, path: str,
                     errs: list[FieldError]) -> None:
    where = f"{_body(path)} in body"
    if "maximum" in s:
        if s.get("exclusiveMaximum") is True and v >= s["maximum"]:
            errs.append(_invalid(path, v, f"{where} should be less than {s['maximum']}"))
        elif v > s["maximum"]:
            errs.append(_invalid(path, v, f"{where} should be less than or equal to "
                                          f"{s['maximum']}"))
    if "minimum" in s:
        if s.get("exclusiveMinimum") is True and v <= s["minimum"]:
            errs.append(_invalid(path, v, f"{where} should be greater than {s['minimum']}"))
        elif v < s["minimum"]:
            errs.append(_invalid(path, v, f"{where} should be greater than or equal to "
                                          f"{s['minimum']}"))
    if "multipleOf" in s and s["multipleOf"] and (v / s["multipleOf"]) % 1 != 0:
        errs.append(_invalid(path, v, f"{where} should be a multiple of {s['multipleOf']}"))
    fmt = s.get("format")
    bounds = {"int32": INT32, "int64": INT64}.get(fmt or "")
    if bounds and not bounds[0] <= v <= bounds[1]:
        errs.append(_invalid(path, v, f"{where} must be of type {fmt}: {_go_value(v)}"))


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        log.warning("schema pattern does not compile in Python pattern=%r", pattern)
        return None


def _validate_string(s: dict[str, Any], v: str, path: str, errs: list[FieldError]) -> None:
    where = f"{_body(path)} in body"
    if "maxLength" in s and len(v) > s["maxLength"]:
        errs.append(FieldError(path, f"Too long: may not be more than {s['maxLength']} bytes",
                               "FieldValueTooLong"))
    if "minLength" in s and len(v) < s["minLength"]:
        errs.append(_invalid(path, v, f"{where} should be at least {s['minLength']} chars "
                                      "long"))
    if "pattern" in s:
        rx = _compiled(s["pattern"])
        if rx is not None and not rx.search(v):
            errs.append(_invalid(path, v, f"{where} should match '{s['pattern']}'"))
    fmt = s.get("format")
    if fmt and not _format_ok(fmt, v):
        errs.append(_invalid(path, v, f"{where} must be of type {fmt}: {_go_value(v)}"))


def _format_ok(fmt: str, v: str) -> bool:
    """Loose checks of the formats kube validates; unknown formats pass."""
    try:
        if fmt == "ipv4":
            ipaddress.IPv4Address(v)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(v)
        elif fmt == "cidr":
            ipaddress.ip_network(v, strict=False)
            return "/" in v
        elif fmt == "date-time":
            dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
        elif fmt == "date":
            return bool(_DATE.match(v))
        elif fmt == "uuid":
            return bool(_UUID.match(v))
        elif fmt == "byte":
            base64.b64decode(v, validate=True)
    except ValueError:
        return False
    return True


def _validate_array(s: dict[str, Any], v: list[Any], path: str,
                    errs: list[FieldError]) -> None:
    where = f"{_body(path)} in body"
    if "maxItems" in s and len(v) > s["maxItems"]:
        errs.append(FieldError(path, f"Too many: {len(v)}: must have at most {s['maxItems']} "
                                     "items", "FieldValueTooMany"))
    if "minItems" in s and len(v) < s["minItems"]:
        errs.append(_invalid(path, v, f"{where} should have at least {s['minItems']} items"))
    list_type = s.get("x-kubernetes-list-type")
    if s.get("uniqueItems") is True or list_type == "set":
        errs.extend(_duplicates(path, v, lambda item: item))
    elif list_type == "map":
        keys = s.get("x-kubernetes-list-map-keys") or []

        def map_key(item: Any) -> Any:
            return {k: item.get(k) for k in keys} if isinstance(item, dict) else item
        errs.extend(_duplicates(path, v, map_key))
    items = s.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(v):
            _validate(items, item, _index(path, i), errs)


def _duplicates(path: str, v: list[Any], key_of: Any) -> list[FieldError]:
    seen: set[str] = set()
    errs = []
    for i, item in enumerate(v):
        key = key_of(item)
        canon = json.dumps(key, sort_keys=True)
        if canon in seen:
            errs.append(FieldError(_index(path, i), f"Duplicate value: {_go_value(key)}",
                                   "FieldValueDuplicate"))
        seen.add(canon)
    return errs


def _validate_object(s: dict[str, Any], v: dict[str, Any], path: str,
                     errs: list[FieldError]) -> None:
    where = f"{_body(path)} in body"
    for name in s.get("required") or []:
        if name not in v:
            errs.append(_required(_child(path, name)))
    if "maxProperties" in s and len(v) > s["maxProperties"]:
        errs.append(FieldError(path, f"Too many: {len(v)}: must have at most "
                                     f"{s['maxProperties']} items", "FieldValueTooMany"))
    if "minProperties" in s and len(v) < s["minProperties"]:
        errs.append(_invalid(path, v, f"{where} should have at least {s['minProperties']} "
                                      "properties"))
    props = s.get("properties") or {}
    additional = s.get("additionalProperties")
    for name, item in v.items():
        sub = props.get(name)
        if isinstance(sub, dict):
            _validate(sub, item, _child(path, name), errs)
        elif isinstance(additional, dict):
            _validate(additional, item, _child(path, name), errs)


def _matches(s: dict[str, Any], value: Any, path: str) -> list[FieldError]:
    sub_errs: list[FieldError] = []
    _validate(s, value, path, sub_errs)
    return sub_errs


def _validate_combinators(s: dict[str, Any], value: Any, path: str,
                          errs: list[FieldError]) -> None:
    for sub in s.get("allOf") or []:
        errs.extend(_matches(sub, value, path))
    if s.get("anyOf"):
        results = [_matches(sub, value, path) for sub in s["anyOf"]]
        if all(results):
            errs.append(_invalid(path, value, f"{_body(path)} in body must validate at least "
                                              "one schema (anyOf)"))
            errs.extend(results[0])
    if s.get("oneOf"):
        passing = sum(1 for sub in s["oneOf"] if not _matches(sub, value, path))
        if passing != 1:
            errs.append(_invalid(path, value, f"{_body(path)} in body must validate one and "
                                              "only one schema (oneOf)"))
    if isinstance(s.get("not"), dict) and not _matches(s["not"], value, path):
        errs.append(_invalid(path, value, f"{_body(path)} in body must not validate the "
                                          "schema (not)"))
