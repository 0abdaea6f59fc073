"""HTTP handlers: content negotiation, query options, and dispatch to REST semantics."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import discovery
from .errors import APIError, bad_request
from .protobuf_codec import decode_object
from .registry import ResourceInfo
from .rest import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, DeleteOptions
from .routing import Discovery, Target, not_found_path, parse
from .selectors import parse_field_selector, parse_label_selector
from .storage import Entry, dumps
from .watch import WatchRequest, WatchStream

if TYPE_CHECKING:
    from .server import APIServer

log = logging.getLogger("antrea.lab.apiserver.http")

PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_TYPE = "application/json"


def json_response(body: Any, status: int = 200) -> web.Response:
    raw = body if isinstance(body, bytes) else dumps(body)
    return web.Response(body=raw, status=status, content_type=JSON_TYPE)


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        params = {}
        for f in fields[1:]:
            k, _, v = f.partition("=")
            params[k.strip()] = v.strip()
        out.append((fields[0].lower(), params))
    return out


def negotiate(request: web.Request) -> str:
    """'json' or 'table'; 406 when only protobuf (or nothing we speak) is acceptable."""
    accept = request.headers.get("Accept", "")
    if not accept:
        return "json"
    ranges = _media_ranges(accept)
    for mtype, params in ranges:
        if mtype in (JSON_TYPE, "*/*", "application/*") and params.get("g") == "meta.k8s.io":
            if params.get("as") == "Table":
                return "table"
            if params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return "metadata"
    for mtype, params in ranges:
        if mtype in (JSON_TYPE, "*/*", "application/*", "application/yaml") \
                and not params.get("as"):
            return "json"
    raise APIError(406, "NotAcceptable",
                   f"only the following media types are accepted: {JSON_TYPE}")


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "")


class Handlers:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._openapi_cache: dict[str, bytes] = {}
        self._openapi_generation = -1

    @property
    def rest(self):  # type: ignore[no-untyped-def]
        return self.server.rest

    # --- entry point -------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/openapi/"):
            return self.openapi(path)
        target = parse(path, self.server.catalog)
        if isinstance(target, Discovery):
            if request.method != "GET":
                raise APIError(405, "MethodNotAllowed", "method not allowed")
            return json_response(self._discovery(target))
        return await self._resource(request, target)

    def _discovery(self, d: Discovery) -> dict[str, Any]:
        catalog = self.server.catalog
        parts = d.parts
        if parts == ("api",):
            return discovery.api_versions(self.server.advertise_address)
        if parts[0] == "api":
            return discovery.resource_list(catalog, "", parts[1])
        if parts == ("apis",):
            return discovery.api_group_list(catalog)
        if len(parts) == 2:
            return discovery.api_group(catalog, parts[1])
        return discovery.resource_list(catalog, parts[1], parts[2])

    def openapi(self, path: str) -> web.Response:
        from . import openapi

        catalog = self.server.catalog
        if self._openapi_generation != catalog.generation:
            self._openapi_cache.clear()
            self._openapi_generation = catalog.generation
        key = path.rstrip("/")
        cached = self._openapi_cache.get(key)
        if cached is not None:
            return json_response(cached)
        infos = catalog.all()
        prefix = "/openapi/v3/"
        if key == "/openapi/v3":
            body = dumps(openapi.openapi_v3_paths(infos))
        elif path.startswith(prefix):
            gv_path = key[len(prefix):]
            segs = gv_path.split("/")
            if segs[0] == "api" and len(segs) == 2:
                group, version = "", segs[1]
            elif segs[0] == "apis" and len(segs) == 3:
                group, version = segs[1], segs[2]
            else:
                raise not_found_path()
            if not catalog.in_group_version(group, version):
                raise not_found_path()
            body = dumps(openapi.openapi_v3_document(gv_path, infos))
        else:
            raise not_found_path()
        self._openapi_cache[key] = body
        return json_response(body)

    # --- resources ---------------------------------------------------------------------

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        q = request.query
        if t.info.verbs == ("create",) and (method != "POST" or t.name):
            raise APIError(405, "MethodNotAllowed", f"{t.info.resource} only support create")
        if method == "GET":
            mode = negotiate(request)
            if t.watch_path or _truthy(q.get("watch")):
                return await self.watch(request, t, mode)
            if t.name is None:
                return self.list(request, t, mode)
            entry = self.rest.get(t.info, t.namespace or "", t.name)
            return self._entry_response(t.info, entry, mode, request)
        if method == "POST":
            return await self.post(request, t)
        if method == "PUT":
            if t.name is None:
                raise APIError(405, "MethodNotAllowed", "PUT needs an object name")
            body = await self._body(request)
            entry = self.rest.update(t.info, t.namespace or "", t.name, body,
                                     subresource=t.subresource, dry_run=_dry_run(q),
                                     field_manager=q.get("fieldManager", _agent(request)))
            return self._entry_response(t.info, entry, "json", request)
        if method == "PATCH":
            if t.name is None:
                raise APIError(405, "MethodNotAllowed", "PATCH needs an object name")
            ctype = request.content_type
            body = await self._body(request, yaml_ok=ctype == APPLY_PATCH)
            if ctype not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH):
                raise APIError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted "
                               f"media types include: {JSON_PATCH}, {MERGE_PATCH}, "
                               f"{APPLY_PATCH}, {STRATEGIC_PATCH}")
            manager = q.get("fieldManager", "" if ctype == APPLY_PATCH else _agent(request))
            entry, created = self.rest.patch(
                t.info, t.namespace or "", t.name, ctype, body, subresource=t.subresource,
                dry_run=_dry_run(q), field_manager=manager, force=_truthy(q.get("force")))
            return self._entry_response(t.info, entry, "json", request,
                                        status=201 if created else 200)
        if method == "DELETE":
            body = await self._body(request, optional=True)
            opts = DeleteOptions.parse(dict(q), body if isinstance(body, dict) else None)
            if t.name is None:
                pred = self._predicate(t, q)[0]
                entries = self.rest.delete_collection(t.info, t.namespace, pred, opts)
                return self._list_response(t.info, entries, str(self.server.store.rv), "",
                                           None)
            entry, gone_now = self.rest.delete(t.info, t.namespace or "", t.name, opts)
            return self._entry_response(t.info, entry, "json", request,
                                        status=200 if gone_now else 202)
        raise APIError(405, "MethodNotAllowed", f"method {method} not allowed")

    async def post(self, request: web.Request, t: Target) -> web.Response:
        q = request.query
        body = await self._body(request)
        ns = t.namespace or ""
        if t.subresource == "binding":
            assert t.name is not None
            self.rest.bind(ns, t.name, body)
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success", "code": 201}, status=201)
        if t.subresource == "token":
            assert t.name is not None
            return json_response(self.server.token_request(ns, t.name, body), status=201)
        if t.info.resource == "tokenreviews":
            return json_response(self.server.token_review(body), status=201)
        if t.name is not None or t.subresource:
            raise APIError(405, "MethodNotAllowed", "POST goes to the collection")
        if t.info.namespaced and t.namespace is None:
            md = body.get("metadata") if isinstance(body, dict) else None
            ns = (md or {}).get("namespace") or ""
            if not ns:
                raise bad_request("a namespace is required to create this object")
        entry = self.rest.create(t.info, ns, body, dry_run=_dry_run(q),
                                 field_manager=q.get("fieldManager", _agent(request)))
        return self._entry_response(t.info, entry, "json", request, status=201)

    # --- bodies and options ------------------------------------------------------------

    async def _body(self, request: web.Request, yaml_ok: bool = False,
                    optional: bool = False) -> Any:
        ctype = request.content_type
        raw = await request.read()
        if not raw:
            if optional:
                return None
            raise bad_request("the request body is empty")
        if ctype.startswith(PROTOBUF):
            # kubectl's typed `create` commands send protobuf; the codec knows those kinds
            # and answers 415 (naming the kind) for the rest.
            return decode_object(raw)
        try:
            if yaml_ok or ctype == "application/yaml":
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"the body of the request could not be decoded: {e}") from None

    def _predicate(self, t: Target, q: Any) -> tuple[Callable[[dict[str, Any]], bool] | None,
                                                        str | None]:
        labels = parse_label_selector(q.get("labelSelector"))
        fields, pinned = parse_field_selector(q.get("fieldSelector"), t.info.resource)
        if t.name:
            pinned = t.name
            name = t.name

            def by_name(o: dict[str, Any]) -> bool:
                return o["metadata"]["name"] == name

            fields = by_name if fields is None else _both(fields, by_name)
        if labels is None:
            return fields, pinned
        if fields is None:
            return labels, pinned
        return _both(labels, fields), pinned

    # --- list / get --------------------------------------------------------------------

    def list(self, request: web.Request, t: Target, mode: str) -> web.Response:
        q = request.query
        pred, pinned = self._predicate(t, q)
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise bad_request("limit must be an integer") from None
        result = self.rest.list(t.info, t.namespace, pred, limit=max(limit, 0),
                                continue_token=q.get("continue", ""), pinned_name=pinned)
        if mode == "metadata":
            return json_response({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": _list_meta(result.resource_version, result.continue_token,
                                       result.remaining),
                "items": [_partial(e.obj) for e in result.entries]})
        if mode == "table":
            table = self._table(t.info, [e.obj for e in result.entries],
                                q.get("includeObject", "Metadata"))
            table["metadata"] = _list_meta(result.resource_version, result.continue_token,
                                           result.remaining)
            return json_response(table)
        return self._list_response(t.info, result.entries, result.resource_version,
                                   result.continue_token, result.remaining)

    def _list_response(self, info: ResourceInfo, entries: list[Entry], rv: str, cont: str,
                       remaining: int | None) -> web.Response:
        head = dumps({"kind": info.list_kind, "apiVersion": info.group_version,
                      "metadata": _list_meta(rv, cont, remaining)})
        items = b",".join(_raw_for(info, e) for e in entries)
        return json_response(head[:-1] + b',"items":[' + items + b"]}")

    def _entry_response(self, info: ResourceInfo, entry: Entry, mode: str,
                        request: web.Request, status: int = 200) -> web.Response:
        if mode == "metadata":
            return json_response(_partial(entry.obj), status)
        if mode == "table":
            table = self._table(info, [entry.obj],
                                request.query.get("includeObject", "Metadata"))
            table["metadata"] = {"resourceVersion": entry.obj["metadata"].get(
                "resourceVersion", "")}
            return json_response(table, status)
        return json_response(_raw_for(info, entry), status)

    def _table(self, info: ResourceInfo, objs: list[dict[str, Any]], include: str
               ) -> dict[str, Any]:
        from .tables import table_for

        if include not in ("None", "Metadata", "Object"):
            raise bad_request(f"includeObject must be None, Metadata or Object, not {include}")
        return table_for(info, objs, include)

    # --- watch -------------------------------------------------------------------------

    async def watch(self, request: web.Request, t: Target, mode: str) -> web.StreamResponse:
        q = request.query
        pred, _ = self._predicate(t, q)
        timeout = None
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError:
                raise bad_request("timeoutSeconds must be a number") from None
        sie = q.get("sendInitialEvents")
        send_initial = None if sie is None else _truthy(sie)
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise APIError(422, "Invalid", "sendInitialEvents is forbidden unless "
                           "resourceVersionMatch=NotOlderThan")
        req = WatchRequest(t.info, t.namespace, pred, q.get("resourceVersion", ""),
                           _truthy(q.get("allowWatchBookmarks")) and
                           "allowWatchBookmarks" in q, timeout, send_initial)
        render = None
        if mode == "table":
            include = q.get("includeObject", "Metadata")

            def render(entry: Entry) -> bytes:
                return dumps(self._table(t.info, [entry.obj], include))
        elif mode == "metadata":
            def render(entry: Entry) -> bytes:
                return dumps(_partial(entry.obj))
        elif not t.info.builtin:
            def render(entry: Entry) -> bytes:
                return _raw_for(t.info, entry)
        stream = WatchStream(self.server.store, req, self.server.bookmark_interval, render)
        stream.open()  # no await before this: replay and registration are atomic
        return await stream.serve(request)


def _both(a: Callable[[dict[str, Any]], bool], b: Callable[[dict[str, Any]], bool]
          ) -> Callable[[dict[str, Any]], bool]:
    return lambda o: a(o) and b(o)


def _raw_for(info: ResourceInfo, entry: Entry) -> bytes:
    """The stored JSON, re-encoded only when a CR is read through another version."""
    if info.builtin or entry.obj.get("apiVersion") == info.group_version:
        return entry.raw
    return dumps({**entry.obj, "apiVersion": info.group_version})


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"]}


def _list_meta(rv: str, cont: str, remaining: int | None) -> dict[str, Any]:
    md: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        md["continue"] = cont
        if remaining is not None:
            md["remainingItemCount"] = remaining
    return md


def _dry_run(q: Any) -> bool:
    return "All" in q.getall("dryRun", [])


def _agent(request: web.Request) -> str:
    """Kubernetes names the default field manager after the user agent's program name."""
    ua = request.headers.get("User-Agent", "unknown")
    return ua.split("/", 1)[0] or "unknown"
