"""OpenAPI helpers: request bodies documented from the domain models that validate them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["request_body"]


def request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body whose schema is `model` (the domain model that validates it)."""
    schema = model.model_json_schema()
    schema.pop("$defs", None)
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}
