"""Generic REST semantics over the store: create, update, patch, delete, list.

Independent of HTTP: inputs are parsed bodies and options, outputs are stored entries,
errors are `APIError`. Every method is synchronous, so each request's check-then-write
happens without another request interleaving (the server runs one event loop).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from .apply import applied_fields, remove_unowned
from .catalog import Catalog
from .crds import CustomResourceStrategy
from .errors import APIError, FieldError, already_exists, bad_request, conflict, gone, invalid
from .errors import not_found as _not_found
from .namespace_strategy import terminating
from .patching import json_patch, merge_patch, strategic_merge_patch
from .registry import ResourceInfo
from .selectors import Predicate
from .storage import Entry, Store
from .strategy import Obj, Strategy
from .validation import validate_metadata

log = logging.getLogger("antrea.lab.apiserver.rest")

_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation", "selfLink")


def now_rfc3339(offset_seconds: int = 0) -> str:
    t = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found_err(info: ResourceInfo, name: str) -> APIError:
    return _not_found(info.resource, name, info.group)


def _body_of(obj: Obj) -> Obj:
    """The object without the fields every write changes, to detect no-op updates."""
    out = dict(obj)
    md = dict(out.get("metadata") or {})
    md.pop("resourceVersion", None)
    md.pop("managedFields", None)
    out["metadata"] = md
    return out


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    dry_run: bool = False
    precondition_uid: str | None = None
    precondition_rv: str | None = None

    @classmethod
    def parse(cls, query: dict[str, str], body: Obj | None) -> DeleteOptions:
        opts = cls()
        body = body or {}
        grace = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        if grace is not None and grace != "":
            try:
                opts.grace_period = max(int(grace), 0)
            except (TypeError, ValueError):
                raise bad_request(f"invalid gracePeriodSeconds {grace!r}") from None
        dry = query.get("dryRun") or body.get("dryRun")
        opts.dry_run = bool(dry) and (dry == "All" or "All" in (dry if isinstance(dry, list)
                                                                  else [dry]))
        pre = body.get("preconditions") or {}
        opts.precondition_uid = pre.get("uid")
        opts.precondition_rv = pre.get("resourceVersion")
        return opts


@dataclass
class ListResult:
    entries: list[Entry]
    resource_version: str
    continue_token: str
    remaining: int | None


class RestAPI:
    def __init__(self, store: Store, catalog: Catalog, strategies: dict[tuple[str, str], Strategy]
                 ) -> None:
        self.store = store
        self.catalog = catalog
        self.strategies = strategies
        self._default_strategy = Strategy()
        ns_info = catalog.lookup("", "v1", "namespaces")
        assert ns_info is not None
        self.ns_info = ns_info

    def strategy(self, info: ResourceInfo) -> Strategy:
        if not info.builtin:
            return CustomResourceStrategy(info)
        return self.strategies.get((info.group, info.resource), self._default_strategy)

    # --- reading -----------------------------------------------------------------------

    def get(self, info: ResourceInfo, namespace: str, name: str) -> Entry:
        entry = self.store.get(info, namespace, name)
        if entry is None:
            raise _not_found_err(info, name)
        return entry

    def list(self, info: ResourceInfo, namespace: str | None, predicate: Predicate | None,
             limit: int = 0, continue_token: str = "", pinned_name: str | None = None
             ) -> ListResult:
        rs = self.store.resource(info)
        list_rv = self.store.rv
        start: tuple[str, str] | None = None
        if continue_token:
            try:
                tok = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                list_rv, start = int(tok["rv"]), (tok["start"][0], tok["start"][1])
            except (ValueError, KeyError, TypeError, IndexError):
                raise bad_request("invalid continue token") from None
            if list_rv < rs.compacted_rv:
                raise gone("The provided continue parameter is too old to display a consistent "
                           "list result. You can start a new list without the continue "
                           "parameter.")
        if pinned_name is not None and namespace is not None:
            entry = self.store.get(info, namespace, pinned_name)
            pairs = [((namespace if info.namespaced else "", pinned_name), entry)] if entry else []
        else:
            pairs = self.store.items(info, namespace if info.namespaced else None)
        entries: list[Entry] = []
        token = ""
        remaining: int | None = None
        for i, (key, entry) in enumerate(pairs):
            if start is not None and key <= start:
                continue
            if predicate is not None and not predicate(entry.obj):
                continue
            if limit and len(entries) >= limit:
                last = entries[-1].obj["metadata"]
                token = base64.urlsafe_b64encode(json.dumps(
                    {"rv": list_rv, "start": [last.get("namespace", ""), last["name"]]}
                ).encode()).decode()
                if predicate is None:
                    remaining = len(pairs) - i
                break
            entries.append(entry)
        return ListResult(entries, str(list_rv), token, remaining)

    # --- create ------------------------------------------------------------------------

    def _check_type(self, info: ResourceInfo, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != info.group_version:
            raise bad_request(f"the API version in the data ({api_version}) does not match the "
                              f"expected API version ({info.group_version})")
        if kind and kind != info.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                              f"({info.kind})")
        body["apiVersion"], body["kind"] = info.group_version, info.kind
        md = body.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        return md

    def _check_namespace(self, info: ResourceInfo, namespace: str, md: Obj) -> None:
        if not info.namespaced:
            md.pop("namespace", None)
            return
        body_ns = md.get("namespace")
        if body_ns and body_ns != namespace:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        md["namespace"] = namespace

    def _require_namespace(self, namespace: str, for_create: bool) -> None:
        ns = self.store.get(self.ns_info, "", namespace)
        if ns is None:
            raise _not_found("namespaces", namespace)
        if for_create and terminating(ns.obj):
            raise APIError(403, "Forbidden", f"unable to create new content in namespace "
                           f"{namespace} because it is being terminated", kind="namespaces",
                           name=namespace)

    def create(self, info: ResourceInfo, namespace: str, body: Any, *, dry_run: bool = False,
               field_manager: str = "", operation: str = "Update",
               fields: dict[str, Any] | None = None) -> Entry:
        md = self._check_type(info, body)
        self._check_namespace(info, namespace, md)
        if not md.get("name") and md.get("generateName"):
            for _ in range(8):
                name = str(md["generateName"]) + "".join(
                    secrets.choice(_GENERATE_CHARS) for _ in range(5))
                if self.store.get(info, namespace, name) is None:
                    md["name"] = name
                    break
        name = str(md.get("name") or "")
        if info.namespaced:
            self._require_namespace(namespace, for_create=True)
        if name and self.store.get(info, namespace, name) is not None:
            raise already_exists(info.resource, name, info.group)
        for field in (*_SERVER_METADATA, "resourceVersion"):
            md.pop(field, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md["generation"] = 1
        strategy = self.strategy(info)
        if strategy.reset_status_on_create and "status" in info.subresources \
                and info.resource != "nodes":
            body.pop("status", None)
        strategy.default(body)
        strategy.prepare_create(body)
        errs = validate_metadata(info, body) + strategy.validate(body, None)
        if errs:
            raise invalid(info.kind, name, errs, info.group)
        _record_manager(body, field_manager or "unknown", operation, info.group_version,
                        fields)
        if dry_run:
            return Entry(body)
        strategy.commit_create(body)
        entry = self.store.write(info, body, None)
        strategy.after_write(entry.obj, None)
        return entry

    # --- update ------------------------------------------------------------------------

    def update(self, info: ResourceInfo, namespace: str, name: str, body: Any, *,
               subresource: str = "", dry_run: bool = False, field_manager: str = "",
               operation: str = "Update", fields: dict[str, Any] | None = None) -> Entry:
        md = self._check_type(info, body)
        self._check_namespace(info, namespace, md)
        if md.get("name") and md["name"] != name:
            raise bad_request(f"the name of the object ({md['name']}) does not match the name "
                              f"on the URL ({name})")
        md["name"] = name
        old_entry = self.get(info, namespace, name)
        old = old_entry.obj
        rv = md.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(info.resource, name, "the object has been modified; please apply "
                           "your changes to the latest version and try again", info.group)
        return self._write_update(info, old_entry, body, subresource, dry_run,
                                  field_manager or "unknown", operation, fields)

    def _write_update(self, info: ResourceInfo, old_entry: Entry, body: Obj, subresource: str,
                      dry_run: bool, manager: str, operation: str,
                      fields: dict[str, Any] | None) -> Entry:
        old = old_entry.obj
        name = old["metadata"]["name"]
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = body["status"]
            else:
                new.pop("status", None)
        elif subresource == "finalize":
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["finalizers"] = list(
                (body.get("spec") or {}).get("finalizers") or [])
        else:
            new = body
            if "status" in info.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        md, old_md = new["metadata"], old["metadata"]
        for field in _SERVER_METADATA:
            if field in old_md:
                md[field] = old_md[field]
            else:
                md.pop(field, None)
        md["resourceVersion"] = old_md["resourceVersion"]
        strategy = self.strategy(info)
        if not subresource:
            strategy.default(new)
            strategy.prepare_update(new, old)
        errs = validate_metadata(info, new) + strategy.validate(new, old)
        if errs:
            raise invalid(info.kind, name, errs, info.group)
        if md.get("deletionTimestamp"):
            added = set(md.get("finalizers") or []) - set(old_md.get("finalizers") or [])
            if added:
                raise invalid(info.kind, name, [FieldError(
                    "metadata.finalizers", "Forbidden: no new finalizers can be added if the "
                    "object is being deleted", "FieldValueForbidden")], info.group)
        if not subresource and _spec_part(new) != _spec_part(old):
            md["generation"] = int(old_md.get("generation") or 1) + 1
        _record_manager(new, manager, operation, info.group_version, fields,
                        subresource=subresource)
        if _body_of(new) == _body_of(old):
            return old_entry  # no-op: same resourceVersion, no event, as Kubernetes does
        if dry_run:
            return Entry(new)
        strategy.commit_update(new, old)
        entry = self.store.write(info, new, old_entry)
        strategy.after_write(entry.obj, old)
        if self._deletion_complete(info, entry.obj):
            return self._remove(info, entry.obj)
        return entry

    def _deletion_complete(self, info: ResourceInfo, obj: Obj) -> bool:
        md = obj["metadata"]
        if not md.get("deletionTimestamp") or md.get("finalizers"):
            return False
        if info.resource == "namespaces" and (obj.get("spec") or {}).get("finalizers"):
            return False
        return int(md.get("deletionGracePeriodSeconds") or 0) == 0

    # --- patch -------------------------------------------------------------------------

    def patch(self, info: ResourceInfo, namespace: str, name: str, content_type: str,
              patch: Any, *, subresource: str = "", dry_run: bool = False,
              field_manager: str = "", force: bool = False) -> tuple[Entry, bool]:
        """Apply a patch; returns (entry, created) — apply patches create missing objects."""
        entry = self.store.get(info, namespace, name)
        if content_type == APPLY_PATCH:
            return self._apply(info, namespace, name, entry, patch, subresource, dry_run,
                               field_manager, force)
        if entry is None:
            raise _not_found_err(info, name)
        current = entry.obj
        if content_type == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise bad_request("a merge patch must be a JSON object")
            new = merge_patch(copy.deepcopy(current), patch)
        elif content_type == JSON_PATCH:
            new = json_patch(current, patch)
        elif content_type == STRATEGIC_PATCH:
            if not info.builtin:
                raise APIError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted "
                               f"media types include: {JSON_PATCH}, {MERGE_PATCH}, "
                               f"{APPLY_PATCH}")
            new = strategic_merge_patch(current, patch)
        else:
            raise APIError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media "
                           f"types include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}"
                           + ("" if not info.builtin else f", {STRATEGIC_PATCH}"))
        if not isinstance(new, dict):
            raise bad_request("the patched object is not a JSON object")
        new_md = new.get("metadata") or {}
        rv = new_md.get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise conflict(info.resource, name, "the object has been modified; please apply "
                           "your changes to the latest version and try again", info.group)
        self._check_type(info, new)
        self._check_namespace(info, namespace, new["metadata"])
        if new["metadata"].get("name") != name:
            raise bad_request("the name of the object cannot be changed by a patch")
        return self._write_update(info, entry, new, subresource, dry_run,
                                  field_manager or "unknown", "Update", None), False

    def _apply(self, info: ResourceInfo, namespace: str, name: str, entry: Entry | None,
               applied: Any, subresource: str, dry_run: bool, manager: str, force: bool
               ) -> tuple[Entry, bool]:
        """Server-side apply, simplified: see apply.py for what is and is not modelled."""
        if not manager:
            raise bad_request("PATCH requests with apply content type must specify fieldManager")
        if not isinstance(applied, dict):
            raise bad_request("the applied configuration must be an object")
        md = applied.get("metadata")
        if not isinstance(md, dict) or (md.get("name") and md["name"] != name):
            raise bad_request("the name of the applied configuration does not match the URL")
        fields = applied_fields(applied, keyed_lists=info.builtin)
        if entry is None:
            if subresource:
                raise _not_found_err(info, name)
            body = copy.deepcopy(applied)
            body["metadata"]["name"] = name
            return self.create(info, namespace, body, dry_run=dry_run, field_manager=manager,
                               operation="Apply", fields=fields), True
        current = entry.obj
        rv = md.get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise conflict(info.resource, name, "the object has been modified; please apply "
                           "your changes to the latest version and try again", info.group)
        previous = _previous_apply(current, manager, subresource)
        base = remove_unowned(copy.deepcopy(current), previous, fields) if previous else \
            copy.deepcopy(current)
        merge = strategic_merge_patch if info.builtin else merge_patch
        new = merge(base, applied)
        self._check_type(info, new)
        self._check_namespace(info, namespace, new["metadata"])
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._write_update(info, entry, new, subresource, dry_run, manager, "Apply",
                                  fields), False

    # --- delete ------------------------------------------------------------------------

    def delete(self, info: ResourceInfo, namespace: str, name: str, opts: DeleteOptions
               ) -> tuple[Entry, bool]:
        """Delete or start deleting; returns (object, gone_now)."""
        entry = self.get(info, namespace, name)
        obj, md = entry.obj, entry.obj["metadata"]
        if opts.precondition_uid and opts.precondition_uid != md.get("uid"):
            raise conflict(info.resource, name, f"Precondition failed: UID in precondition: "
                           f"{opts.precondition_uid}, UID in object meta: {md.get('uid')}",
                           info.group)
        if opts.precondition_rv and opts.precondition_rv != md.get("resourceVersion"):
            raise conflict(info.resource, name, "Precondition failed: ResourceVersion in "
                           f"precondition: {opts.precondition_rv}, ResourceVersion in object "
                           f"meta: {md.get('resourceVersion')}", info.group)
        grace = self._grace_period(info, obj, opts.grace_period)
        blocked = bool(md.get("finalizers")) or (
            info.resource == "namespaces" and bool((obj.get("spec") or {}).get("finalizers")))
        if not blocked and grace == 0:
            if opts.dry_run:
                return entry, True
            return self._remove(info, obj), True
        if md.get("deletionTimestamp"):
            current_grace = int(md.get("deletionGracePeriodSeconds") or 0)
            if grace >= current_grace:
                return entry, False  # already being deleted, nothing shortened
        if opts.dry_run:
            return entry, False
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = md.get("deletionTimestamp") if \
            md.get("deletionTimestamp") and grace > 0 else now_rfc3339(grace)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        if info.resource == "namespaces":
            new.setdefault("status", {})["phase"] = "Terminating"
        written = self.store.write(info, new, entry)
        return written, False

    def _grace_period(self, info: ResourceInfo, obj: Obj, requested: int | None) -> int:
        if info.resource != "pods":
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # Unscheduled or finished pods have no kubelet to wait for.
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return requested
        return int(spec.get("terminationGracePeriodSeconds", 30) or 0)

    def _remove(self, info: ResourceInfo, obj: Obj) -> Entry:
        md = obj["metadata"]
        gone_entry = self.store.delete(info, (md.get("namespace", ""), md["name"]))
        assert gone_entry is not None
        self.strategy(info).after_delete(gone_entry.obj)
        return gone_entry

    def delete_collection(self, info: ResourceInfo, namespace: str | None,
                          predicate: Predicate | None, opts: DeleteOptions) -> list[Entry]:
        out = []
        for _, entry in self.store.items(info, namespace if info.namespaced else None):
            if predicate is not None and not predicate(entry.obj):
                continue
            md = entry.obj["metadata"]
            out.append(self.delete(info, md.get("namespace", ""), md["name"], opts)[0])
        return out

    def delete_all_of(self, info: ResourceInfo) -> None:
        """Remove every object of a resource at once (its CRD is gone), end its watches."""
        for _, entry in self.store.items(info):
            self._remove(info, entry.obj)
        self.store.resource(info).close_watchers()

    # --- subresources ------------------------------------------------------------------

    def bind(self, namespace: str, name: str, binding: Any) -> None:
        info = self.catalog.lookup("", "v1", "pods")
        assert info is not None
        if not isinstance(binding, dict):
            raise bad_request("the request body must be a Binding")
        target = binding.get("target") or {}
        node = target.get("name")
        if not node:
            raise invalid("Binding", name, [FieldError("target.name", "Required value",
                                                      "FieldValueRequired")])
        entry = self.get(info, namespace, name)
        pod = entry.obj
        if pod["metadata"].get("deletionTimestamp"):
            raise conflict("pods", name, "pod is being deleted, cannot be assigned to a host")
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise conflict("pods", name, f"pod {name} is already assigned to node "
                           f'"{current}"')
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        conds = [c for c in (new.get("status") or {}).get("conditions") or []
                 if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True",
                      "lastTransitionTime": now_rfc3339(), "lastProbeTime": None})
        new.setdefault("status", {})["conditions"] = conds
        self.store.write(info, new, entry)


def _record_manager(obj: Obj, manager: str, operation: str, api_version: str,
                    fields: dict[str, Any] | None, subresource: str = "") -> None:
    """Keep one managedFields entry per (manager, operation, subresource)."""
    md = obj["metadata"]
    entries = [e for e in md.get("managedFields") or []
               if not (e.get("manager") == manager and e.get("operation") == operation
                       and e.get("subresource", "") == subresource)]
    entry: dict[str, Any] = {"manager": manager, "operation": operation,
                             "apiVersion": api_version, "time": now_rfc3339(),
                             "fieldsType": "FieldsV1",
                             "fieldsV1": fields if fields is not None else {}}
    if subresource:
        entry["subresource"] = subresource
    entries.append(entry)
    md["managedFields"] = entries


def _previous_apply(obj: Obj, manager: str, subresource: str) -> dict[str, Any] | None:
    for e in obj["metadata"].get("managedFields") or []:
        if e.get("manager") == manager and e.get("operation") == "Apply" \
                and e.get("subresource", "") == subresource:
            return e.get("fieldsV1") or {}
    return None
