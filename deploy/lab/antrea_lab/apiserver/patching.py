"""The three PATCH formats: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge.

Strategic merge is Kubernetes' own format: lists of built-in kinds merge element-wise by a
per-field key (containers by name, ...) instead of being replaced. The keys below are the
`patchMergeKey`/`patchStrategy` tags of the Kubernetes API types that matter for the lab;
lists not listed are replaced, as they are in Kubernetes.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import APIError, bad_request

JSON = Any


# --- RFC 7386 --------------------------------------------------------------------------

def merge_patch(target: JSON, patch: JSON) -> JSON:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 --------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit():
        raise APIError(422, "Invalid", f"invalid array index {token!r}")
    idx = int(token)
    limit = len(container) if for_add else len(container) - 1
    if idx > limit:
        raise APIError(422, "Invalid", f"array index {idx} out of bounds")
    return idx


def _walk(doc: JSON, tokens: list[str]) -> JSON:
    cur = doc
    for tok in tokens:
        if isinstance(cur, dict):
            if tok not in cur:
                raise APIError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, for_add=False)]
        else:
            raise APIError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")
    return cur


def _add(doc: JSON, tokens: list[str], value: JSON) -> JSON:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise APIError(422, "Invalid", "add to a non-container")
    return doc


def _remove(doc: JSON, tokens: list[str]) -> JSON:
    if not tokens:
        raise APIError(422, "Invalid", "cannot remove the whole document")
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise APIError(422, "Invalid", f"unable to remove nonexistent key: {last}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, for_add=False))
    raise APIError(422, "Invalid", "remove from a non-container")


def json_patch(doc: JSON, ops: JSON) -> JSON:
    if not isinstance(ops, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _walk(doc, path)  # must exist
            if path:
                _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = _remove(doc, src) if kind == "move" else copy.deepcopy(_walk(doc, src))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _walk(doc, path) != op.get("value"):
                raise APIError(422, "Invalid", f"testing value {op['path']} failed")
        else:
            raise bad_request(f"unknown JSON patch operation {kind!r}")
    return doc


# --- strategic merge -------------------------------------------------------------------

# (field name, parent field name or "") -> merge key; "" as key = merge as a set of primitives.
_MERGE_KEYS: dict[tuple[str, str], str] = {
    ("containers", ""): "name",
    ("initContainers", ""): "name",
    ("ephemeralContainers", ""): "name",
    ("volumes", ""): "name",
    ("env", ""): "name",
    ("volumeMounts", ""): "mountPath",
    ("volumeDevices", ""): "devicePath",
    ("imagePullSecrets", ""): "name",
    ("conditions", ""): "type",
    ("ownerReferences", ""): "uid",
    ("finalizers", "metadata"): "",
    ("hostAliases", ""): "ip",
    ("topologySpreadConstraints", ""): "topologyKey",
    ("addresses", "status"): "type",  # node status addresses
    ("taints", "spec"): "key",
    ("podIPs", ""): "ip",
    ("podCIDRs", "spec"): "",
    ("resourceClaims", ""): "name",
    ("ports", "containers"): "containerPort",
    ("ports", "initContainers"): "containerPort",
    ("ports", "spec"): "port",  # ServiceSpec.ports
}


def merge_key(field: str, parent: str, kind: str) -> str | None:
    if field == "ports" and parent == "spec" and kind != "Service":
        return None
    if (field, parent) in _MERGE_KEYS:
        return _MERGE_KEYS[(field, parent)]
    return _MERGE_KEYS.get((field, ""))


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise bad_request("a strategic merge patch must be a JSON object")
    kind = str(patch.get("kind") or target.get("kind") or "")
    return _smp_map(copy.deepcopy(target), patch, "", kind)


def _smp_map(target: dict[str, Any], patch: dict[str, Any], parent: str,
             kind: str) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        target = {k: v for k, v in target.items() if k in retain}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(target.get(field), list) and isinstance(value, list):
                target[field] = [v for v in target[field] if v not in value]
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            cur = target.get(key)
            target[key] = _smp_map(cur if isinstance(cur, dict) else {}, value, key, kind)
        elif isinstance(value, list):
            target[key] = _smp_list(target.get(key), value, key, parent, kind)
        else:
            target[key] = value
    for key, order in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(order, list):
            field = key.split("/", 1)[1]
            if isinstance(target.get(field), list):
                target[field] = _apply_order(target[field], order, merge_key(field, parent, kind))
    return target


def _smp_list(current: Any, patch: list[Any], field: str, parent: str, kind: str) -> list[Any]:
    key = merge_key(field, parent, kind)
    cur = current if isinstance(current, list) else []
    if key is None:
        return [_strip_directives(copy.deepcopy(v)) for v in patch
                if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    if key == "":  # primitive set: union in order
        out = list(cur)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    out = list(cur)
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"list {field} expects objects merged by {key}")
        if item.get("$patch") == "delete":
            out = [o for o in out if not (isinstance(o, dict) and o.get(key) == item.get(key))]
            continue
        for i, existing in enumerate(out):
            if isinstance(existing, dict) and existing.get(key) == item.get(key):
                out[i] = _smp_map(existing, item, field, kind)
                break
        else:
            out.append(_smp_map({}, item, field, kind))
    return out


def _apply_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    if not key:
        return items

    def ident(v: Any) -> Any:
        return v.get(key) if isinstance(v, dict) else v

    rank = {ident(o): i for i, o in enumerate(order)}
    return sorted(items, key=lambda v: rank.get(ident(v), len(rank)))


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value
