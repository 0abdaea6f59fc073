"""Read antrea-agent.conf / antrea-controller.conf and turn every problem into a ConfigError.

This is the one place where pydantic's errors are translated: each message names the file,
the key path in the file's own spelling (``antreaProxy.proxyAll``, ``featureGates.Foo``,
``secondaryNetwork.ovsBridges[0].bridgeName``), what is allowed, and the line when known.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from antrea_core.config.agent import AgentConfig
from antrea_core.config.controller import ControllerConfig
from antrea_core.config.feature_gates import FeatureGateError, suggest
from antrea_core.config.fields import ConfigValueError, yaml_kind

AGENT_CONF_NAME = "antrea-agent.conf"
CONTROLLER_CONF_NAME = "antrea-controller.conf"

ModelT = TypeVar("ModelT", bound=BaseModel)
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    message: str
    key: str | None = None  # dotted path in the file's spelling; None when the message has it
    line: int | None = None  # 1-based, when the key comes from the file

    def __str__(self) -> str:
        text = f"{self.key}: {self.message}" if self.key else self.message
        return f"{text} (line {self.line})" if self.line else text


class ConfigError(Exception):
    """A configuration file could not be used; one line per problem, each naming the file."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__("\n".join(f"{source}: {issue}" for issue in issues))


def load_agent_config(
    path: Path | None, overrides: Mapping[str, Any] | None = None
) -> AgentConfig:
    """antrea-agent.conf at ``path`` (None or an empty file: all defaults) with ``overrides``
    (file-spelled keys, nested mappings or dotted paths) merged on top."""
    return _load(AgentConfig, path, overrides, AGENT_CONF_NAME)


def load_controller_config(
    path: Path | None, overrides: Mapping[str, Any] | None = None
) -> ControllerConfig:
    """antrea-controller.conf at ``path``, like load_agent_config."""
    return _load(ControllerConfig, path, overrides, CONTROLLER_CONF_NAME)


def _load(
    model: type[ModelT],
    path: Path | None,
    overrides: Mapping[str, Any] | None,
    default_name: str,
) -> ModelT:
    source = str(path) if path is not None else default_name
    data: dict[str, Any] = {}
    lines: dict[KeyPath, int] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, [ConfigIssue(f"cannot read: {exc.strerror or exc}")]) from exc
        data, lines = _parse_yaml(text, source)
    if overrides:
        data = _merge(data, _expand_dotted(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = [_issue(err, model, lines) for err in exc.errors()]
        # File order reads best; problems without a line (overrides, defaults) go last.
        issues.sort(key=lambda issue: issue.line if issue.line is not None else 1 << 30)
        raise ConfigError(source, issues) from None


# --- YAML -------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f'duplicate key "{key}"', key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(source, [ConfigIssue(f"{where}invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigIssue(f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            source,
            [ConfigIssue(f"expected a mapping of keys at the top level, got {yaml_kind(data)}")],
        )
    lines: dict[KeyPath, int] = {}
    _record_lines(node, (), lines)
    return data, lines


def _record_lines(node: yaml.Node, prefix: KeyPath, out: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            out[path] = key_node.start_mark.line + 1
            _record_lines(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*prefix, index)] = item.start_mark.line + 1
            _record_lines(item, (*prefix, index), out)


def _expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        expanded = _expand_dotted(value) if isinstance(value, Mapping) else value
        parts = key.split(".")
        for part in reversed(parts[1:]):
            expanded = {part: expanded}
        out = _merge(out, {parts[0]: expanded})
    return out


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --- pydantic errors -> ConfigIssue -------------------------------------------------------

_TYPE_WORDS = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}

_CUSTOM = {"choice", "choice_type", "out_of_range", "cidr", "duration"}


def _issue(err: ErrorDetails, model: type[BaseModel], lines: Mapping[KeyPath, int]) -> ConfigIssue:
    loc: KeyPath = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    message = err["msg"]
    if isinstance(cause, FeatureGateError):
        loc = (*loc, cause.gate)
        message = str(cause)
    elif isinstance(cause, ConfigValueError):
        loc = (*loc, *cause.key.split("."))
        message = str(cause)
    elif kind == "value_error" and cause is not None:
        message = str(cause)
    elif kind == "extra_forbidden":
        return _unknown_key(model, loc, lines)
    elif kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {_describe(err['input'])}"
    elif kind == "missing":
        message = "missing required key"
    elif kind == "too_long":
        message = f"at most {ctx.get('max_length')} item(s) allowed"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "literal_error":
        message = f"invalid value {_describe(err['input'])}; allowed: {ctx.get('expected')}"
    elif kind not in _CUSTOM:
        message = message[0].lower() + message[1:] if message else kind
    return ConfigIssue(message, key=_format(loc) or None, line=_line(loc, lines))


def _unknown_key(
    model: type[BaseModel], loc: KeyPath, lines: Mapping[KeyPath, int]
) -> ConfigIssue:
    parent, key = loc[:-1], str(loc[-1])
    known = _keys_at(model, parent)
    hint = suggest(key, known) if known else None
    prefix = _format(parent)
    full = f"{prefix}.{key}" if prefix else key
    if hint:
        hinted = f"{prefix}.{hint}" if prefix else hint
        message = f'unknown key "{full}" (did you mean "{hinted}"?)'
    elif known:
        message = f'unknown key "{full}"; known keys here: {", ".join(known)}'
    else:
        message = f'unknown key "{full}"'
    return ConfigIssue(message, line=_line(loc, lines))


def _keys_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """The keys the model accepts at ``loc`` (list indexes skipped), in declaration order."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = next(
            (f for name, f in current.model_fields.items() if (f.alias or name) == part), None
        )
        current = _nested_model(field.annotation) if field is not None else None
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def _format(loc: KeyPath) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _line(loc: KeyPath, lines: Mapping[KeyPath, int]) -> int | None:
    # The deepest part of the path that the file spells out (cross-field keys may be absent).
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, dict | list):
        return yaml_kind(value)
    return f"{yaml_kind(value)} {value!r}"
