"""The ASGI app's edges, in process (httpx ASGI transport): bodies, content types, RFC 7592 request rules."""

from __future__ import annotations

import httpx
import pytest

from keystile.idp import IdpConfig, create_idp_app
from keystile.idp.app import MAX_BODY_BYTES

ISSUER = "http://127.0.0.1:9400"
MACHINE = {"client_name": "x", "grant_types": ["client_credentials"], "response_types": [], "scope": "read"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_idp_app(IdpConfig(data_dir=tmp_path_factory.mktemp("idp-app"), issuer=ISSUER))


@pytest.fixture
async def http(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
        yield client


@pytest.fixture
def iat(app) -> str:
    return str(app.state.idp_facts.initial_access_token)


async def registered(http, iat) -> dict:
    response = await http.post("/register", json=MACHINE, headers={"Authorization": f"Bearer {iat}"})
    assert response.status_code == 201
    return response.json()


async def test_oversized_bodies_are_refused(http, iat):
    big = "x" * (MAX_BODY_BYTES + 1)
    token = await http.post("/token", content=f"grant_type=client_credentials&pad={big}",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    register = await http.post("/register", content=big, headers={"Authorization": f"Bearer {iat}"})
    introspect = await http.post(
        "/introspect", content=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert [r.status_code for r in (token, register, introspect)] == [413, 413, 413]
    assert token.json()["error"] == "invalid_request"


async def test_a_token_request_that_is_not_a_form_has_no_grant_type(http):
    response = await http.post("/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_a_registration_body_that_is_not_a_json_object_is_invalid_request(http, iat):
    headers = {"Authorization": f"Bearer {iat}", "Content-Type": "application/json"}
    for body in (b"", b"[1]", b"{not json"):
        response = await http.post("/register", content=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_request", body


async def test_a_put_must_carry_the_client_id_and_no_server_fields(http, iat):
    client = await registered(http, iat)
    headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
    uri = client["registration_client_uri"]
    no_id = await http.put(uri, json=MACHINE, headers=headers)
    with_rat = await http.put(uri, json={**MACHINE, "client_id": client["client_id"], "registration_access_token": "x"},
                              headers=headers)  # fmt: skip
    wrong_secret = await http.put(uri, json={**MACHINE, "client_id": client["client_id"], "client_secret": "nope"},
                                  headers=headers)  # fmt: skip
    for response in (no_id, with_rat, wrong_secret):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
    right_secret = await http.put(
        uri,
        json={**MACHINE, "client_id": client["client_id"], "client_secret": client["client_secret"]},
        headers=headers,
    )
    assert right_secret.status_code == 200


async def test_a_put_replaces_the_metadata(http, iat):
    client = await registered(http, iat)
    headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
    body = {"client_id": client["client_id"], "response_types": [], "client_name": "renamed", "contacts": ["a@b.c"]}
    response = await http.put(client["registration_client_uri"], json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["scope"] == "read write"  # omitted → the default, not the old "read"
    assert response.json()["contacts"] == ["a@b.c"]


async def test_a_put_with_bad_metadata_is_refused_quietly(http, iat, capsys):
    client = await registered(http, iat)
    headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
    body = {**MACHINE, "client_id": client["client_id"], "client_uri": "not a url"}
    response = await http.put(client["registration_client_uri"], json=body, headers=headers)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_client_metadata")
    assert capsys.readouterr().out == ""


async def test_the_configuration_endpoint_needs_a_bearer(http, iat):
    client = await registered(http, iat)
    basic = await http.get(client["registration_client_uri"], auth=(client["client_id"], client["client_secret"]))
    none = await http.delete(client["registration_client_uri"])
    unknown = await http.get("/register/no-such-client", headers={"Authorization": "Bearer whatever"})
    for response in (basic, none, unknown):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"


async def test_unsupported_token_type_hint_and_missing_token_at_introspection(http, iat):
    client = await registered(http, iat)
    auth = (client["client_id"], client["client_secret"])
    hint = await http.post("/introspect", data={"token": "x", "token_type_hint": "id_token"}, auth=auth)
    missing = await http.post("/introspect", data={}, auth=auth)
    assert hint.json()["error"] == "unsupported_token_type"
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


async def test_discovery_is_cacheable_and_answers_head(http):
    response = await http.get("/.well-known/oauth-authorization-server")
    head = await http.head("/jwks")
    assert response.headers["cache-control"] == "public, max-age=300"
    assert head.status_code == 200
    assert (await http.post("/jwks")).status_code == 405


def test_facts_on_app_state(app):
    facts = app.state.idp_facts
    assert facts.issuer == ISSUER
    assert facts.token_endpoint == f"{ISSUER}/token"
