"""OpenAPI helpers: request bodies documented from the domain models that validate them."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

__all__ = ["request_body"]

_DEFS = "#/$defs/"


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """`node` with every `{"$ref": "#/$defs/X"}` replaced by a copy of `X`: the body schema sits inside an operation,
    where a `$defs` reference resolves to nothing (a dangling reference makes the served document unusable for
    clients and generators). A self-referencing model keeps its reference at the second level (none does today)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS) and ref[len(_DEFS) :] in defs:
            name = ref[len(_DEFS) :]
            if name in seen:
                return {}
            target = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline(target, defs, (*seen, name))
        return {key: _inline(value, defs, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    return node


def request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body whose schema is `model` (the domain model that validates it)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": _inline(schema, defs)}}}}
