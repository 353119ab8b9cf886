"""The product page's OpenAPI rendering: parameters (path-level and operation), $refs, allOf/oneOf, recursion."""

from __future__ import annotations

from keystile.web import openapi

DOC = {
    "openapi": "3.1.0",
    "info": {"title": "T", "version": "1"},
    "security": [{"oauth": []}],
    "paths": {
        "/pets/{id}": {
            "parameters": [{"$ref": "#/components/parameters/Id"}],
            "get": {
                "summary": "Get a pet",
                "deprecated": True,
                "parameters": [{"name": "X-Trace", "in": "header", "schema": {"type": ["string", "null"]}}],
                "responses": {"200": {"$ref": "#/components/responses/Pet"}, "404": {"description": "No such pet"}},
            },
            "put": {
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
                },
                "responses": {"204": {"description": "Saved"}},
            },
        }
    },
    "components": {
        "parameters": {"Id": {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}},
        "responses": {
            "Pet": {
                "description": "A pet",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
            }
        },
        "schemas": {
            "Pet": {
                "allOf": [{"$ref": "#/components/schemas/Named"}],
                "type": "object",
                "required": ["kind"],
                "properties": {
                    "kind": {"type": "string", "enum": ["cat", "dog"]},
                    "owner": {"oneOf": [{"$ref": "#/components/schemas/Person"}, {"type": "null"}]},
                    "friends": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}},
                },
            },
            "Named": {"type": "object", "properties": {"name": {"type": "string", "description": "Display name"}}},
            "Person": {"type": "object", "properties": {"pet": {"$ref": "#/components/schemas/Pet"}}},
        },
    },
}


def test_operations_parameters_bodies_and_security() -> None:
    get, put = openapi.operations(DOC)
    assert (get.method, get.path, get.summary, get.deprecated) == ("GET", "/pets/{id}", "Get a pet", True)
    assert [(p["name"], p["in"], p["required"], p["type"]) for p in get.parameters] == [
        ("id", "path", True, "integer"),
        ("X-Trace", "header", False, "string | null"),
    ]
    assert get.security == ["oauth"]
    assert put.security == []  # an operation may opt out of the document's security
    assert [(s, d) for s, d, _ in get.responses] == [("200", "A pet"), ("404", "No such pet")]
    lines = get.responses[0][2]
    names = [(line.depth, line.name) for line in lines]
    assert (0, "name") in names  # from allOf
    assert (0, "kind") in names and (0, "owner") in names and (0, "friends") in names
    kind = next(line for line in lines if line.name == "kind")
    assert kind.required and '"cat"' in kind.type
    assert any(line.name == "option 1" and "Person" in line.type for line in lines)
    assert put.request_required
    assert put.request[0][0] == "application/json"


def test_recursive_schemas_end() -> None:
    lines = openapi.schema_lines(DOC, {"$ref": "#/components/schemas/Pet"})
    assert 0 < len(lines) <= openapi.MAX_LINES
    assert max(line.depth for line in lines) <= openapi.MAX_DEPTH + 1


def test_unreadable_documents_render_nothing() -> None:
    assert openapi.load("{not json") is None
    assert openapi.load("- a list") is None
    assert openapi.operations({"paths": "nope"}) == []
    assert openapi.load('{"openapi": "3.0.0", "paths": {}}') == {"openapi": "3.0.0", "paths": {}}
