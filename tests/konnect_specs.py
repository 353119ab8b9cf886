"""Konnect's published OpenAPI documents (read in place from ../shared/specs/konnect/) for compatibility tests."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator

from tests.conftest import missing_service

SPECS = Path(os.environ.get("KEYSTILE_TEST_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "specs/konnect"


@functools.cache
def _load(name: str) -> dict[str, Any]:
    path = SPECS / name
    if not path.exists():
        missing_service(f"Konnect spec {path} not found (the shared/ folder beside the checkout)")
    with path.open() as fh:
        loaded: dict[str, Any] = yaml.safe_load(fh)
    return loaded


def spec(name: str) -> dict[str, Any]:
    return _load(name)


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` (one level at a time, repeatedly)."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def schema_errors(doc: dict[str, Any], ref: str, instance: Any) -> list[str]:
    """Validation errors of `instance` against the schema at `ref` (e.g. '#/components/schemas/X').

    keystile's documented extension fields are allowed: `additionalProperties` errors are not counted (a Konnect
    field that is missing, renamed or of another type still fails through `required`/`type`).
    """
    root = {"$ref": ref, "components": doc["components"]}
    validator = OAS30Validator(root)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
        if e.validator != "additionalProperties"
    ]


def response_schema_ref(doc: dict[str, Any], response_name: str) -> str:
    response = doc["components"]["responses"][response_name]
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref


def request_examples(doc: dict[str, Any], body_name: str) -> dict[str, Any]:
    body = doc["components"]["requestBodies"][body_name]
    examples = body["content"]["application/json"]["examples"]
    return {name: resolve(doc, ex)["value"] for name, ex in examples.items()}
