"""Example-based regressions for what the schemathesis runs found in the served OpenAPI document: each case below
failed a check (or could not be generated at all) before its fix, and is checked here deterministically."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis

from tests.integration.fuzz.harness import CHECKS
from tests.integration.fuzz.world import World, build_world

pytestmark = pytest.mark.xdist_group("fuzz-regressions")  # one seeded world per run, not per worker
REF = re.compile(r'"\$ref": "([^"]+)"')


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("openapi-regressions"))


@pytest.fixture(scope="module")
def document(world: World) -> dict[str, Any]:
    return world.app.openapi()  # type: ignore[no-any-return]


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=world.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def conforms(world: World, method: str, path: str, response: httpx.Response) -> None:
    """The response passes the fuzz runs' checks against the served document (no 5xx, schema, status, type)."""
    schema = schemathesis.openapi.from_asgi("/v2/openapi.json", world.app)
    operation = schema[path][method]
    operation.Case().validate_response(response, checks=CHECKS)


def admin(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.admin_token}"}


def developer(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.developer_token}"}


def test_every_reference_in_the_served_document_resolves(document: dict[str, Any]) -> None:
    # request bodies built from models with nested models used to keep `#/$defs/…` references, which resolve to
    # nothing inside an operation: schemathesis could not generate any auth-strategy body (400 on every example)
    refs = set(REF.findall(json.dumps(document)))
    assert refs
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]
    body = document["paths"]["/v2/application-auth-strategies"]["post"]["requestBody"]["content"]
    principals = body["application/json"]["schema"]["properties"]["principals"]
    assert "$ref" not in json.dumps(principals)
    assert principals["anyOf"][0]["type"] == "object"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/portals/{portalId}/applications/{applicationId}/registrations/{registrationId}",
        "/v2/portals/{portalId}/application-registrations/{registrationId}",
    ],
)
async def test_admin_registration_patch_documents_its_body(
    world: World, document: dict[str, Any], client: httpx.AsyncClient, path: str
) -> None:
    # the body (`{status}`) was missing from the document: every generated PATCH was a 400
    body = document["paths"][path]["patch"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["status"]
    assert set(schema["properties"]["status"]["enum"]) == {"approved", "pending", "revoked", "rejected"}
    url = path.format(**world.ids)
    response = await client.patch(url, json={"status": "approved"}, headers=admin(world))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    conforms(world, "PATCH", path, response)


async def test_sign_up_answers_201_without_a_body_as_documented(
    world: World, document: dict[str, Any], client: httpx.AsyncClient
) -> None:
    # portal-api.md §2: 201, no body; the document promised application/json
    assert "content" not in document["paths"]["/api/v2/developer"]["post"]["responses"]["201"]
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    response = await client.post("/api/v2/developer", json={"email": email, "full_name": "New Developer"})
    assert response.status_code == 201, response.text
    assert response.content == b""
    conforms(world, "POST", "/api/v2/developer", response)


async def test_forgot_password_answers_200_without_a_body_as_documented(
    world: World, document: dict[str, Any], client: httpx.AsyncClient
) -> None:
    # portal-api.md §2: 200, no body; the document promised application/json
    assert "content" not in document["paths"]["/api/v2/developer/forgot-password"]["post"]["responses"]["200"]
    response = await client.post("/api/v2/developer/forgot-password", json={"email": world.developer_email})
    assert response.status_code == 200, response.text
    assert response.content == b""
    conforms(world, "POST", "/api/v2/developer/forgot-password", response)


async def test_credential_rename_answers_200_without_a_body_as_documented(
    world: World, document: dict[str, Any], client: httpx.AsyncClient
) -> None:
    # portal-api.md §5: 200, no body; the document promised application/json
    path = "/api/v2/applications/{applicationId}/credentials/{credentialId}"
    assert "content" not in document["paths"][path]["put"]["responses"]["200"]
    response = await client.put(path.format(**world.ids), json={"display_name": "CI"}, headers=developer(world))
    assert response.status_code == 200, response.text
    assert response.content == b""
    conforms(world, "PUT", path, response)


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/v2/api-products", "admin"),
        ("/v2/audit-logs", "admin"),
        ("/v2/portals/{portalId}/applications", "admin"),
        ("/api/v2/products", "developer"),
        ("/api/v2/applications", "developer"),
    ],
)
async def test_a_page_number_past_64_bits_is_a_400_not_a_500(
    world: World, client: httpx.AsyncClient, path: str, token: str
) -> None:
    # every list answered 500 (the driver's OverflowError on OFFSET) for page[number]=99999999999999999999999
    headers = admin(world) if token == "admin" else developer(world)
    url = path.format(**world.ids)
    for number in ("99999999999999999999999", "9223372036854775807", "1000000001"):
        response = await client.get(url, params={"page[number]": number}, headers=headers)
        assert response.status_code == 400, (number, response.text)
        (problem,) = response.json()["invalid_parameters"]
        assert problem == {
            "field": "page[number]",
            "rule": "max",
            "reason": "page[number] must be at most 1000000000",
            "source": "query",
            "maximum": 1_000_000_000,
        }
        conforms(world, "GET", path, response)
    # the ceiling itself is still a page past the end: empty data, as before
    response = await client.get(url, params={"page[number]": "1000000000", "page[size]": "1000"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []
    assert response.json()["meta"]["page"]["number"] == 1_000_000_000


async def test_a_page_number_past_64_bits_is_a_400_on_both_databases(api) -> None:
    # the same overflow, on the shared test runtime (SQLite and PostgreSQL)
    response = await api.client.get("/v2/portals", params={"page[number]": "9223372036854775808"})
    assert response.status_code == 400, response.text
    assert response.json()["invalid_parameters"][0]["rule"] == "max"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/portals/{portalId}/application-registrations", 200),
        ("GET", "/v2/portals/{portalId}/application-registrations/{registrationId}", 200),
        ("GET", "/v2/portals/{portalId}/applications/{applicationId}/registrations", 200),
        ("GET", "/v2/portals/{portalId}/applications/{applicationId}/registrations/{registrationId}", 200),
        ("GET", "/v2/idp-operations", 200),
        ("GET", "/v2/idp-operations/{operationId}", 200),
        ("POST", "/v2/idp-operations/{operationId}/retry", 202),
    ],
)
async def test_registration_and_idp_operation_answers_are_documented(
    world: World, document: dict[str, Any], client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    # these answered an undocumented body (schema `{}`), so response_schema_conformance checked nothing
    content = document["paths"][path][method.lower()]["responses"][str(status)]["content"]
    assert content["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
    response = await client.request(method, path.format(**world.ids), headers=admin(world))
    assert response.status_code == status, response.text
    conforms(world, method, path, response)
