"""An OpenAPI 3.0/3.1 document turned into what the product page shows: operations, parameters, request and
response schemas (local `$ref`s resolved, depth-limited so recursive schemas end)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Operation", "SchemaLine", "load", "operations"]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_DEPTH = 5
MAX_LINES = 200


@dataclass(frozen=True)
class SchemaLine:
    """One property of a schema, indented by `depth`."""

    depth: int
    name: str
    type: str
    required: bool
    description: str


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    description: str
    deprecated: bool
    operation_id: str | None
    tags: list[str]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    request: list[tuple[str, list[SchemaLine]]] = field(default_factory=list)
    request_required: bool = False
    responses: list[tuple[str, str, list[SchemaLine]]] = field(default_factory=list)
    security: list[str] = field(default_factory=list)


def load(content: str) -> dict[str, Any] | None:
    """The stored document as a dict (it passed validation on upload), or None when unreadable."""
    try:
        doc = json.loads(content) if content.lstrip().startswith("{") else yaml.safe_load(content)
    except (ValueError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, dict) else None


class _Resolver:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, node: Any, seen: frozenset[str] = frozenset()) -> tuple[Any, str | None, frozenset[str]]:
        """(node with a local $ref followed, the ref's last name, refs seen so far)."""
        name = None
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                return {}, ref.rsplit("/", 1)[-1], seen
            seen = seen | {ref}
            name = ref.rsplit("/", 1)[-1]
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            node = target if target is not None else {}
        return node, name, seen


def _type_of(schema: dict[str, Any], ref_name: str | None) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = " | ".join(str(k) for k in kind)
    text = str(kind) if kind else ""
    if schema.get("format"):
        text += f" ({schema['format']})"
    if isinstance(schema.get("enum"), list):
        text += " one of " + ", ".join(json.dumps(v) for v in schema["enum"][:12])
    for combo in ("oneOf", "anyOf", "allOf"):
        if isinstance(schema.get(combo), list):
            text = text or combo
    if ref_name and not text:
        text = ref_name
    elif ref_name:
        text = f"{ref_name}: {text}"
    return text or "any"


def _schema_lines(
    r: _Resolver, node: Any, out: list[SchemaLine], depth: int, seen: frozenset[str] = frozenset()
) -> None:
    schema, _, seen = r.resolve(node, seen)
    if not isinstance(schema, dict) or depth > MAX_DEPTH or len(out) >= MAX_LINES:
        return
    parts = schema.get("allOf")
    if isinstance(parts, list):
        for part in parts:
            _schema_lines(r, part, out, depth, seen)
    for combo in ("oneOf", "anyOf"):
        options = schema.get(combo)
        if isinstance(options, list):
            for i, option in enumerate(options):
                sub, sub_name, sub_seen = r.resolve(option, seen)
                if isinstance(sub, dict):
                    out.append(SchemaLine(depth, f"option {i + 1}", _type_of(sub, sub_name), False, ""))
                    _schema_lines(r, sub, out, depth + 1, sub_seen)
    props = schema.get("properties")
    required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
    if isinstance(props, dict):
        for name, prop in props.items():
            sub, sub_name, sub_seen = r.resolve(prop, seen)
            if not isinstance(sub, dict):
                continue
            desc = sub.get("description") if isinstance(sub.get("description"), str) else ""
            out.append(SchemaLine(depth, str(name), _type_of(sub, sub_name), name in required, desc or ""))
            if len(out) >= MAX_LINES:
                return
            _schema_lines(r, sub, out, depth + 1, sub_seen)
    if schema.get("type") == "array" and "items" in schema:
        items, items_name, items_seen = r.resolve(schema["items"], seen)
        if isinstance(items, dict):
            if depth == 0 or not items.get("properties"):
                out.append(SchemaLine(depth, "[items]", _type_of(items, items_name), False, ""))
            _schema_lines(r, items, out, depth + 1, items_seen)


def schema_lines(doc: dict[str, Any], node: Any) -> list[SchemaLine]:
    r = _Resolver(doc)
    out: list[SchemaLine] = []
    schema, name, _ = r.resolve(node)
    if (
        isinstance(schema, dict)
        and not schema.get("properties")
        and schema.get("type") != "array"
        and not any(k in schema for k in ("allOf", "oneOf", "anyOf"))
    ):
        out.append(SchemaLine(0, "(body)", _type_of(schema, name), False, str(schema.get("description") or "")))
        return out
    _schema_lines(r, node, out, 0)
    return out


def _content(doc: dict[str, Any], holder: dict[str, Any]) -> list[tuple[str, list[SchemaLine]]]:
    content = holder.get("content")
    if not isinstance(content, dict):
        return []
    return [
        (str(media), schema_lines(doc, spec.get("schema", {})))
        for media, spec in content.items()
        if isinstance(spec, dict)
    ]


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation of the document, in document order."""
    r = _Resolver(doc)
    out: list[Operation] = []
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        return out
    top_security = doc.get("security")
    for path, item in paths.items():
        item, _, _ = r.resolve(item)
        if not isinstance(item, dict):
            continue
        shared_raw = item.get("parameters")
        shared: list[Any] = shared_raw if isinstance(shared_raw, list) else []
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            entry = Operation(
                method=method.upper(),
                path=str(path),
                summary=str(op.get("summary") or ""),
                description=str(op.get("description") or ""),
                deprecated=op.get("deprecated") is True,
                operation_id=op.get("operationId") if isinstance(op.get("operationId"), str) else None,
                tags=[str(t) for t in op.get("tags") or [] if isinstance(t, str | int)],
            )
            own = op.get("parameters")
            params: list[Any] = [*shared, *(own if isinstance(own, list) else [])]
            for raw in params:
                param, _, _ = r.resolve(raw)
                if not isinstance(param, dict) or "name" not in param:
                    continue
                schema, sname, _ = r.resolve(param.get("schema", {}))
                entry.parameters.append(
                    {
                        "name": str(param["name"]),
                        "in": str(param.get("in", "")),
                        "required": param.get("required") is True,
                        "type": _type_of(schema, sname) if isinstance(schema, dict) else "any",
                        "description": str(param.get("description") or ""),
                    }
                )
            body, _, _ = r.resolve(op.get("requestBody"))
            if isinstance(body, dict):
                entry.request = _content(doc, body)
                entry.request_required = body.get("required") is True
            responses = op.get("responses")
            if isinstance(responses, dict):
                for status, raw_resp in responses.items():
                    resp, _, _ = r.resolve(raw_resp)
                    if not isinstance(resp, dict):
                        continue
                    lines: list[SchemaLine] = []
                    for _media, schema_l in _content(doc, resp)[:1]:
                        lines = schema_l
                    entry.responses.append((str(status), str(resp.get("description") or ""), lines))
            security = op.get("security", top_security)
            if isinstance(security, list):
                for requirement in security:
                    if isinstance(requirement, dict):
                        entry.security.extend(str(k) for k in requirement)
            out.append(entry)
    return out
