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

from tests.conftest import missing_service
from tests.integration.fuzz.harness import CHECKS, METHODS
from tests.integration.fuzz.world import World, build_world
from tests.integration.outbox.world import make_world
from tests.unit.dcr.fakes.okta import API_TOKEN, ISSUER, FakeOkta
from tests.unit.dcr.fakes.okta_spec import SPEC_DIR, load_okta_specs

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


# the success answers that have no body, as their contracts say (portal-api.md §2, §5); every other one has a schema
BODILESS = {
    "POST /api/v2/developer 201",
    "POST /api/v2/developer/forgot-password 200",
    "PUT /api/v2/applications/{applicationId}/credentials/{credentialId} 200",
}


def test_every_success_answer_documents_its_body(document: dict[str, Any]) -> None:
    # 19 success answers had an empty schema (`{}`) or none, so response_schema_conformance checked nothing there:
    # the data-plane config, the admin application views and most of `/api/v2/applications…`
    empty: list[str] = []
    bodiless: set[str] = set()
    unexplained: list[str] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if not status.startswith("2") or status == "204":
                    continue
                label = f"{method.upper()} {path} {status}"
                if not response.get("content"):
                    bodiless.add(label)
                    if "no body" not in response["description"]:  # the document says so in words
                        unexplained.append(label)
                    continue
                for media, entry in response["content"].items():
                    if not set(entry.get("schema") or {}) - {"title", "description"}:
                        empty.append(f"{label} {media}")
    assert empty == []
    assert bodiless == BODILESS
    assert unexplained == []


# The fuzz world's applications are all key_auth without a ttl: the answers of the other branches (DCR credentials,
# client secrets, self-managed clients, a key ttl, the admin view of a DCR application) are checked here.
OKTA_PROVIDER = {"name": "okta", "provider_type": "okta", "issuer": ISSUER, "dcr_config": {"dcr_token": API_TOKEN}}
OKTA_STRATEGY = {
    "name": "okta strategy",
    "display_name": "Okta",
    "strategy_type": "openid_connect",
    "configs": {
        "openid-connect": {
            "issuer": ISSUER,
            "credential_claim": ["client_id"],
            "scopes": ["orders:read"],
            "auth_methods": ["client_credentials", "bearer"],
        }
    },
}
KEY_AUTH_WITH_TTL = {
    "name": "expiring keys",
    "display_name": "Expiring key",
    "strategy_type": "key_auth",
    "configs": {"key-auth": {"key_names": ["apikey"], "ttl": {"value": 90, "unit": "days"}}},
}
SELF_MANAGED = {
    "name": "own clients",
    "display_name": "Bring your own client",
    "strategy_type": "openid_connect",
    "configs": {
        "openid-connect": {
            "issuer": "https://idp.example.com",
            "credential_claim": ["client_id"],
            "scopes": ["read"],
            "auth_methods": ["client_credentials"],
        }
    },
}


@pytest.fixture(scope="session")
def okta_validator() -> Any:
    return load_okta_specs()


@pytest.fixture
async def okta(api: Any, okta_validator: Any) -> AsyncIterator[FakeOkta]:
    if okta_validator is None:
        missing_service(f"Okta's OpenAPI documents are not in {SPEC_DIR}")
    fake = FakeOkta(okta_validator, scopes=("orders:read",))
    original = api.runtime.http
    api.runtime.http = fake.client()
    yield fake
    await api.runtime.http.aclose()
    api.runtime.http = original
    fake.assert_clean()


async def check(world: World, api: Any, method: str, path: str, status: int, ids: Any = None, **kw: Any) -> Any:
    """Call `path` (its `{…}` filled from `ids`) on the test runtime: the answer is `status`, and as documented."""
    response = await api.client.request(method, path.format(**(ids or {})), **kw)
    assert response.status_code == status, response.text
    conforms(world, method, path, response)
    return response.json()


async def admin_views_conform(world: World, api: Any, portal_id: Any, app_id: str) -> dict[str, Any]:
    ids = {"portalId": str(portal_id), "applicationId": app_id}
    await check(world, api, "GET", "/v2/portals/{portalId}/applications", 200, ids)
    await check(world, api, "GET", "/v2/portals/{portalId}/applications/{applicationId}", 200, ids)
    body: dict[str, Any] = await check(world, api, "GET", "/v2/applications/{applicationId}", 200, ids)
    return body


APPS = "/api/v2/applications"
APP = APPS + "/{applicationId}"
VERSION_APPS = "/api/v2/products/{productId}/versions/{productVersionId}/applications"


async def test_a_dcr_application_with_two_secrets_answers_as_documented(world: World, api: Any, okta: FakeOkta) -> None:
    dcr = await make_world(api.runtime, api.client, provider=OKTA_PROVIDER, strategy=OKTA_STRATEGY)
    dev = {"headers": dcr.as_dev()}
    created = await check(world, api, "POST", APPS, 201, json={"name": "orders"}, **dev)
    assert set(created["credentials"]) == {"client_id", "client_secret"}
    ids = {"applicationId": created["id"], "productId": str(dcr.product_id), "productVersionId": str(dcr.version_id)}
    await check(world, api, "GET", APPS, 200, **dev)
    assert (await check(world, api, "GET", APP, 200, ids, **dev))["auth_strategy"]["max_allowed_credentials"] == 2
    await check(world, api, "GET", APPS + "/auth-strategies", 200, **dev)
    unregistered = await check(world, api, "GET", VERSION_APPS, 200, ids, params={"unregistered": "true"}, **dev)
    assert [(a["registration_id"], a["registration_status"]) for a in unregistered["data"]] == [(None, None)]
    refreshed = await check(world, api, "POST", APP + "/refresh-token", 201, ids, **dev)
    assert set(refreshed) == {"client_id", "client_secret"}
    second = await check(world, api, "POST", APP + "/credentials", 201, ids, json={"display_name": "next"}, **dev)
    assert second["type"] == "client_secret"
    listing = await check(world, api, "GET", APP + "/credentials", 200, ids, **dev)
    assert [c["type"] for c in listing["data"]] == ["client_secret", "client_secret"]
    assert "credentials" not in await check(world, api, "PATCH", APP, 200, ids, json={"description": "x"}, **dev)
    body = {"product_version_id": str(dcr.version_id)}
    ids["registrationId"] = (await check(world, api, "POST", APP + "/registrations", 201, ids, json=body, **dev))["id"]
    await check(world, api, "GET", APP + "/registrations", 200, ids, **dev)
    await check(world, api, "GET", APP + "/registrations/{registrationId}", 200, ids, **dev)
    registered = await check(world, api, "GET", VERSION_APPS, 200, ids, **dev)
    assert [a["registration_status"] for a in registered["data"]] == ["pending"]
    admin_view = await admin_views_conform(world, api, dcr.portal_id, created["id"])
    assert admin_view["dcr_provider"] == {"id": dcr.provider_id}
    assert admin_view["auth_strategy"]["credential_type"] == "client_credentials"


async def test_a_rotating_update_answers_its_new_secret_as_documented(world: World, api: Any, builtin_idp: Any) -> None:
    # rfc7591 with `rotates_secret_on_put`: a redirect_uri change rotates the secret in the request (portal-api.md §4.3)
    provider = {
        "name": "rotating",
        "provider_type": "rfc7591",
        "issuer": builtin_idp.issuer,
        "dcr_config": {"initial_access_token": builtin_idp.rotating_iat, "rotates_secret_on_put": True},
    }
    dcr = await make_world(api.runtime, api.client, provider=provider)
    dev = {"headers": dcr.as_dev()}
    created = await check(world, api, "POST", APPS, 201, json={"name": "rotating"}, **dev)
    ids = {"applicationId": created["id"]}
    change = {"redirect_uri": "https://app.example.com/callback"}
    patched = await check(world, api, "PATCH", APP, 200, ids, json=change, **dev)
    assert set(patched["credentials"]) == {"client_id", "client_secret"}
    assert patched["credentials"]["client_secret"] != created["credentials"]["client_secret"]
    # the same redirect_uri again: nothing rotates, and no `credentials` key is shown
    assert "credentials" not in await check(world, api, "PATCH", APP, 200, ids, json=change, **dev)
    refreshed = await check(world, api, "POST", APP + "/refresh-token", 201, ids, **dev)
    assert refreshed["client_id"] == created["credentials"]["client_id"]
    await admin_views_conform(world, api, dcr.portal_id, created["id"])


async def test_self_managed_and_expiring_key_applications_answer_as_documented(world: World, api: Any) -> None:
    own = await make_world(api.runtime, api.client, provider=None, strategy=SELF_MANAGED)
    dev = {"headers": own.as_dev()}
    created = await check(world, api, "POST", APPS, 201, json={"name": "mine", "reference_id": "my-client"}, **dev)
    assert "credentials" not in created
    assert created["auth_strategy"]["credential_type"] == "self_managed_client_credentials"
    ids = {"applicationId": created["id"]}
    await check(world, api, "GET", APP, 200, ids, **dev)
    await check(world, api, "PATCH", APP, 200, ids, json={"reference_id": "my-other-client"}, **dev)
    assert (await admin_views_conform(world, api, own.portal_id, created["id"]))["dcr_provider"] is None

    keys = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH_WITH_TTL)
    dev = {"headers": keys.as_dev()}
    created = await check(world, api, "POST", APPS, 201, json={"name": "expiring"}, **dev)
    assert created["auth_strategy"]["ttl"] == {"value": 90, "unit": "days"}
    ids = {"applicationId": created["id"]}
    key = await check(world, api, "POST", APP + "/credentials", 201, ids, json={}, **dev)
    assert key["expires_at"] is not None and key["display_name"] is None
    await check(world, api, "GET", APP + "/credentials", 200, ids, **dev)
    await check(world, api, "GET", APPS + "/auth-strategies", 200, **dev)
    admin_view = await admin_views_conform(world, api, keys.portal_id, created["id"])
    assert admin_view["auth_strategy"]["ttl"] == {"value": 90, "unit": "days"}
