"""Decode Kubernetes protobuf request bodies into the dicts their JSON would have been.

kubectl's typed commands (`kubectl create namespace|configmap|secret|serviceaccount|token|
service|deployment|role|rolebinding|clusterrole|clusterrolebinding`) send their object as
`application/vnd.kubernetes.protobuf`: the magic `k8s\\x00`, then a `runtime.Unknown`
envelope whose `raw` field holds the typed message from k8s.io/api's generated.proto.

Each message is a declarative table (field number -> `Field`), so supporting another kind
is writing its tables and adding it to `KINDS`. Field numbers the tables do not name are
skipped, as protobuf readers do. Kinds without a table are refused with 415 and a hint to
send JSON or YAML instead.

The output follows the Go JSON encoding of the same object, not proto semantics:
Kubernetes' gogo marshaller writes every non-pointer field, zero or not, while JSON drops
zero values of `omitempty` fields. So a scalar field is dropped when it carries its zero
value unless the table says `keep` (the Go field is a pointer or has no `omitempty`);
non-pointer structs are always written by both encoders and stay, even when empty.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from antrea_lab.apiserver.errors import APIError

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class Kind(enum.Enum):
    """How one field's value is encoded and rendered in JSON."""

    STRING = "string"
    BYTES = "bytes"  # JSON renders []byte as base64
    INT = "int"  # int32 / int64 varint, two's complement
    BOOL = "bool"
    MESSAGE = "message"
    TIME = "time"  # meta/v1 Time {1 seconds, 2 nanos} -> RFC 3339, zero -> null
    INT_OR_STRING = "intstr"  # util/intstr {1 type, 2 intVal, 3 strVal}
    QUANTITY = "quantity"  # api/resource Quantity {1 string}


class Label(enum.Enum):
    SINGLE = "single"
    REPEATED = "repeated"
    MAP = "map"  # map<string, kind>: repeated entry {1 key, 2 value}


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    message: Message | None = None
    label: Label = Label.SINGLE
    keep: bool = False  # keep zero values: the Go field is a pointer or lacks omitempty
    null_if_absent: bool = False  # an unset list/map without omitempty is JSON null


Message = Mapping[int, Field]


# --- table vocabulary ---------------------------------------------------------------------

def text(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.STRING, keep=keep)


def integer(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.INT, keep=keep)


def flag(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.BOOL, keep=keep)


def timestamp(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.TIME, keep=keep)


def int_or_string(name: str) -> Field:
    return Field(name, Kind.INT_OR_STRING, keep=True)


def nested(name: str, message: Message) -> Field:
    return Field(name, Kind.MESSAGE, message)


def texts(name: str, *, null_if_absent: bool = False) -> Field:
    return Field(name, Kind.STRING, label=Label.REPEATED, null_if_absent=null_if_absent)


def nested_list(name: str, message: Message, *, null_if_absent: bool = False) -> Field:
    return Field(name, Kind.MESSAGE, message, Label.REPEATED, null_if_absent=null_if_absent)


def mapping(name: str, kind: Kind = Kind.STRING) -> Field:
    return Field(name, kind, label=Label.MAP)


# --- apimachinery ---------------------------------------------------------------------------

OWNER_REFERENCE: Message = {
    1: text("kind", keep=True),
    3: text("name", keep=True),
    4: text("uid", keep=True),
    5: text("apiVersion", keep=True),
    6: flag("controller", keep=True),
    7: flag("blockOwnerDeletion", keep=True),
}

OBJECT_META: Message = {
    1: text("name"),
    2: text("generateName"),
    3: text("namespace"),
    4: text("selfLink"),
    5: text("uid"),
    6: text("resourceVersion"),
    7: integer("generation"),
    8: timestamp("creationTimestamp"),
    9: timestamp("deletionTimestamp", keep=True),
    10: integer("deletionGracePeriodSeconds", keep=True),
    11: mapping("labels"),
    12: mapping("annotations"),
    13: nested_list("ownerReferences", OWNER_REFERENCE),
    14: texts("finalizers"),
    # 17 managedFields: written by the server, never by a create; skipped.
}

LABEL_SELECTOR_REQUIREMENT: Message = {
    1: text("key", keep=True),
    2: text("operator", keep=True),
    3: texts("values"),
}

LABEL_SELECTOR: Message = {
    1: mapping("matchLabels"),
    2: nested_list("matchExpressions", LABEL_SELECTOR_REQUIREMENT),
}

# --- core/v1 --------------------------------------------------------------------------------

NAMESPACE: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested("spec", {1: texts("finalizers")}),
    3: nested("status", {1: text("phase")}),
}

CONFIG_MAP: Message = {
    1: nested("metadata", OBJECT_META),
    2: mapping("data"),
    3: mapping("binaryData", Kind.BYTES),
    4: flag("immutable", keep=True),
}

SECRET: Message = {
    1: nested("metadata", OBJECT_META),
    2: mapping("data", Kind.BYTES),
    3: text("type"),
    4: mapping("stringData"),
    5: flag("immutable", keep=True),
}

OBJECT_REFERENCE: Message = {
    1: text("kind"),
    2: text("namespace"),
    3: text("name"),
    4: text("uid"),
    5: text("apiVersion"),
    6: text("resourceVersion"),
    7: text("fieldPath"),
}

LOCAL_OBJECT_REFERENCE: Message = {1: text("name")}

SERVICE_ACCOUNT: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested_list("secrets", OBJECT_REFERENCE),
    3: nested_list("imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    4: flag("automountServiceAccountToken", keep=True),
}

SERVICE_PORT: Message = {
    1: text("name"),
    2: text("protocol"),
    3: integer("port", keep=True),
    4: int_or_string("targetPort"),
    5: integer("nodePort"),
    6: text("appProtocol", keep=True),
}

SERVICE_SPEC: Message = {
    1: nested_list("ports", SERVICE_PORT),
    2: mapping("selector"),
    3: text("clusterIP"),
    4: text("type"),
    5: texts("externalIPs"),
    7: text("sessionAffinity"),
    8: text("loadBalancerIP"),
    9: texts("loadBalancerSourceRanges"),
    10: text("externalName"),
    11: text("externalTrafficPolicy"),
    12: integer("healthCheckNodePort"),
    13: flag("publishNotReadyAddresses"),
    14: nested("sessionAffinityConfig",
               {1: nested("clientIP", {1: integer("timeoutSeconds", keep=True)})}),
    17: text("ipFamilyPolicy", keep=True),
    18: texts("clusterIPs"),
    19: texts("ipFamilies"),
    20: flag("allocateLoadBalancerNodePorts", keep=True),
    21: text("loadBalancerClass", keep=True),
    22: text("internalTrafficPolicy", keep=True),
    23: text("trafficDistribution", keep=True),
}

SERVICE: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested("spec", SERVICE_SPEC),
    # Status is the server's to write; only its always-present shape is kept.
    3: nested("status", {1: nested("loadBalancer", {})}),
}

CONTAINER_PORT: Message = {
    1: text("name"),
    2: integer("hostPort"),
    3: integer("containerPort", keep=True),
    4: text("protocol"),
    5: text("hostIP"),
}

KEY_SELECTOR: Message = {
    1: nested("localObjectReference", LOCAL_OBJECT_REFERENCE),  # inlined, see _INLINE
    2: text("key", keep=True),
    3: flag("optional", keep=True),
}

ENV_VAR_SOURCE: Message = {
    1: nested("fieldRef", {1: text("apiVersion"), 2: text("fieldPath", keep=True)}),
    2: nested("resourceFieldRef", {1: text("containerName"), 2: text("resource", keep=True),
                                   3: Field("divisor", Kind.QUANTITY)}),
    3: nested("configMapKeyRef", KEY_SELECTOR),
    4: nested("secretKeyRef", KEY_SELECTOR),
}

ENV_VAR: Message = {
    1: text("name", keep=True),
    2: text("value"),
    3: nested("valueFrom", ENV_VAR_SOURCE),
}

RESOURCE_REQUIREMENTS: Message = {
    1: mapping("limits", Kind.QUANTITY),
    2: mapping("requests", Kind.QUANTITY),
}

CONTAINER: Message = {
    1: text("name", keep=True),
    2: text("image"),
    3: texts("command"),
    4: texts("args"),
    5: text("workingDir"),
    6: nested_list("ports", CONTAINER_PORT),
    7: nested_list("env", ENV_VAR),
    8: nested("resources", RESOURCE_REQUIREMENTS),
    13: text("terminationMessagePath"),
    14: text("imagePullPolicy"),
    16: flag("stdin"),
    17: flag("stdinOnce"),
    18: flag("tty"),
    20: text("terminationMessagePolicy"),
}

POD_SPEC: Message = {
    2: nested_list("containers", CONTAINER),
    3: text("restartPolicy"),
    4: integer("terminationGracePeriodSeconds", keep=True),
    6: text("dnsPolicy"),
    7: mapping("nodeSelector"),
    8: text("serviceAccountName"),
    9: text("serviceAccount"),
    10: text("nodeName"),
    11: flag("hostNetwork"),
    15: nested_list("imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    16: text("hostname"),
    17: text("subdomain"),
    19: text("schedulerName"),
    20: nested_list("initContainers", CONTAINER),
    21: flag("automountServiceAccountToken", keep=True),
    24: text("priorityClassName"),
}

POD_TEMPLATE_SPEC: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested("spec", POD_SPEC),
}

# --- apps/v1 --------------------------------------------------------------------------------

DEPLOYMENT_SPEC: Message = {
    1: integer("replicas", keep=True),
    2: nested("selector", LABEL_SELECTOR),
    3: nested("template", POD_TEMPLATE_SPEC),
    4: nested("strategy", {
        1: text("type"),
        2: nested("rollingUpdate", {1: int_or_string("maxUnavailable"),
                                    2: int_or_string("maxSurge")}),
    }),
    5: integer("minReadySeconds"),
    6: integer("revisionHistoryLimit", keep=True),
    7: flag("paused"),
    9: integer("progressDeadlineSeconds", keep=True),
}

DEPLOYMENT: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested("spec", DEPLOYMENT_SPEC),
    3: nested("status", {
        1: integer("observedGeneration"),
        2: integer("replicas"),
        3: integer("updatedReplicas"),
        4: integer("availableReplicas"),
        5: integer("unavailableReplicas"),
        7: integer("readyReplicas"),
    }),
}

# --- authentication/v1 ----------------------------------------------------------------------

TOKEN_REQUEST: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested("spec", {
        1: texts("audiences", null_if_absent=True),
        3: nested("boundObjectRef", {1: text("kind"), 2: text("apiVersion"), 3: text("name"),
                                     4: text("uid")}),
        4: integer("expirationSeconds", keep=True),
    }),
    3: nested("status", {1: text("token", keep=True),
                         2: timestamp("expirationTimestamp", keep=True)}),
}

# --- rbac/v1 --------------------------------------------------------------------------------

POLICY_RULE: Message = {
    1: texts("verbs", null_if_absent=True),
    2: texts("apiGroups"),
    3: texts("resources"),
    4: texts("resourceNames"),
    5: texts("nonResourceURLs"),
}

SUBJECT: Message = {
    1: text("kind", keep=True),
    2: text("apiGroup"),
    3: text("name", keep=True),
    4: text("namespace"),
}

ROLE_REF: Message = {
    1: text("apiGroup", keep=True),
    2: text("kind", keep=True),
    3: text("name", keep=True),
}

ROLE: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested_list("rules", POLICY_RULE, null_if_absent=True),
}

CLUSTER_ROLE: Message = {
    **ROLE,
    3: nested("aggregationRule", {1: nested_list("clusterRoleSelectors", LABEL_SELECTOR)}),
}

ROLE_BINDING: Message = {
    1: nested("metadata", OBJECT_META),
    2: nested_list("subjects", SUBJECT),
    3: nested("roleRef", ROLE_REF),
}

KINDS: dict[tuple[str, str], Message] = {
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "Secret"): SECRET,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("v1", "Service"): SERVICE,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("authentication.k8s.io/v1", "TokenRequest"): TOKEN_REQUEST,
    ("rbac.authorization.k8s.io/v1", "Role"): ROLE,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): CLUSTER_ROLE,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ROLE_BINDING,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ROLE_BINDING,
}

# Go embeds these structs with `json:",inline"`: their fields sit in the parent object.
_INLINE = frozenset({"localObjectReference"})

# runtime.Unknown, the envelope: 1 typeMeta, 2 raw (the typed message), 3 contentEncoding,
# 4 contentType. It is read by hand in decode_object because `raw` stays bytes.
TYPE_META: Message = {1: text("apiVersion"), 2: text("kind")}


# --- decoding -------------------------------------------------------------------------------

def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into the object's JSON-shaped dict.

    Raises APIError 400 for bytes that are not a well-formed envelope or message, and 415
    for an envelope holding a kind this codec has no table for.
    """
    if not body.startswith(MAGIC):
        raise _malformed("the body does not start with the Kubernetes protobuf magic k8s\\0")
    type_meta: dict[str, Any] = {}
    raw = b""
    encoding = ""
    for number, wire, value in _Reader(body[len(MAGIC):]).fields():
        if number == 1:
            type_meta = _decode(_expect_len(value, wire, "typeMeta"), TYPE_META)
        elif number == 2:
            raw = _expect_len(value, wire, "raw")
        elif number == 3:
            encoding = _expect_len(value, wire, "contentEncoding").decode("utf-8", "replace")
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if not kind or not api_version:
        raise _malformed("the protobuf envelope does not name an apiVersion and kind")
    if encoding:
        raise APIError(415, "UnsupportedMediaType",
                       f"protobuf content encoding {encoding!r} is not supported; "
                       "send the object as JSON or YAML")
    table = KINDS.get((api_version, kind))
    if table is None:
        raise APIError(415, "UnsupportedMediaType",
                       f"this lab API server cannot decode {kind} ({api_version}) from "
                       f"protobuf; send it as JSON or YAML instead, e.g. write it to a file "
                       f"and run `kubectl apply -f FILE` (kubectl create -o yaml --dry-run="
                       f"client prints one)", kind=kind)
    obj = _decode(raw, table)
    return {"apiVersion": api_version, "kind": kind, **obj}


def _malformed(why: str) -> APIError:
    return APIError(400, "BadRequest", f"the body of the request could not be decoded: {why}")


class _Reader:
    """The protobuf wire format: a sequence of (field number, wire type, payload)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise _malformed("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise _malformed("varint longer than 10 bytes")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _malformed("truncated field")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def fields(self) -> Iterator[tuple[int, int, int | bytes]]:
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _malformed("field number 0")
            if wire == _VARINT:
                yield number, wire, self.varint()
            elif wire == _LEN:
                yield number, wire, self.take(self.varint())
            elif wire == _I64:
                yield number, wire, int.from_bytes(self.take(8), "little")
            elif wire == _I32:
                yield number, wire, int.from_bytes(self.take(4), "little")
            else:  # groups (3, 4) are proto2 relics no Kubernetes type uses
                raise _malformed(f"unsupported wire type {wire} for field {number}")


def _expect_len(value: int | bytes, wire: int, name: str) -> bytes:
    if wire != _LEN or not isinstance(value, bytes):
        raise _malformed(f"field {name} has wire type {wire}, expected length-delimited")
    return value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(field: Field, kind: Kind, wire: int, value: int | bytes) -> Any:
    if kind is Kind.INT or kind is Kind.BOOL:
        if wire != _VARINT or not isinstance(value, int):
            raise _malformed(f"field {field.name} has wire type {wire}, expected varint")
        return bool(value) if kind is Kind.BOOL else _signed(value)
    raw = _expect_len(value, wire, field.name)
    if kind is Kind.STRING:
        return raw.decode("utf-8", "replace")  # JSON substitutes invalid UTF-8 the same way
    if kind is Kind.BYTES:
        return base64.b64encode(raw).decode("ascii")
    if kind is Kind.MESSAGE:
        return _decode(raw, field.message or {})
    if kind is Kind.TIME:
        return _time(raw)
    if kind is Kind.INT_OR_STRING:
        return _int_or_string(raw)
    return _decode(raw, {1: text("string", keep=True)}).get("string", "")  # Quantity


def _time(raw: bytes) -> str | None:
    if not raw:
        return None  # the zero Time is written as an empty message and is JSON null
    parts = _decode(raw, {1: integer("seconds", keep=True), 2: integer("nanos", keep=True)})
    try:
        moment = datetime.fromtimestamp(parts.get("seconds", 0), UTC)
    except (OverflowError, OSError, ValueError):
        raise _malformed(f"timestamp {parts.get('seconds')} is out of range") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # JSON Time has second precision


def _int_or_string(raw: bytes) -> int | str:
    parts = _decode(raw, {1: integer("type", keep=True), 2: integer("intVal", keep=True),
                          3: text("strVal", keep=True)})
    if parts.get("type", 0) == 1:
        return str(parts.get("strVal", ""))
    return int(parts.get("intVal", 0))


def _map_entry(field: Field, raw: bytes) -> tuple[str, Any]:
    key: str = ""
    value: Any = "" if field.kind is not Kind.QUANTITY else "0"
    for number, wire, item in _Reader(raw).fields():
        if number == 1:
            key = _expect_len(item, wire, field.name).decode("utf-8", "replace")
        elif number == 2:
            value = _scalar(field, field.kind, wire, item)
    return key, value


def _decode(data: bytes, table: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, wire, value in _Reader(data).fields():
        field = table.get(number)
        if field is None:
            continue  # a field newer than our tables, or one we deliberately leave out
        if field.label is Label.MAP:
            key, item = _map_entry(field, _expect_len(value, wire, field.name))
            out.setdefault(field.name, {})[key] = item
        elif field.label is Label.REPEATED:
            items = out.setdefault(field.name, [])
            if wire == _LEN and field.kind in (Kind.INT, Kind.BOOL):  # packed encoding
                assert isinstance(value, bytes)
                packed = _Reader(value)
                while packed.pos < len(value):
                    items.append(_scalar(field, field.kind, _VARINT, packed.varint()))
            else:
                items.append(_scalar(field, field.kind, wire, value))
        else:
            out[field.name] = _scalar(field, field.kind, wire, value)
    for field in table.values():
        if field.name not in out:
            if field.null_if_absent:
                out[field.name] = None
        elif (field.label is Label.SINGLE and not field.keep
              and field.kind not in (Kind.MESSAGE, Kind.INT_OR_STRING, Kind.QUANTITY)
              and out[field.name] in (None, "", 0)):
            del out[field.name]  # omitempty: JSON leaves out what gogo wrote as zero
        elif field.name in _INLINE and isinstance(out[field.name], dict):
            out.update(out.pop(field.name))
    return out
