"""Compatibility: application, credential, registration and auth-strategy responses validate against Konnect's
published schemas (`dev-portal-v2.yaml`, `portal-management-v2.yaml`, read in place), extension fields aside."""

from __future__ import annotations

import copy
from typing import Any

from tests.integration.outbox.world import make_world
from tests.konnect_specs import response_schema_ref, schema_errors, spec

from .test_applications import KEY_AUTH, SELF_MANAGED


def without_discriminators(doc: dict[str, Any]) -> dict[str, Any]:
    """Konnect's `AuthStrategy` unions name a discriminator without a mapping, so a validator looks for schemas
    called `key_auth` / `client_credentials`, which do not exist; the `oneOf` alone still decides."""
    out = copy.deepcopy(doc)
    for schema in out["components"]["schemas"].values():
        if isinstance(schema, dict) and "oneOf" in schema:
            schema.pop("discriminator", None)
    return out


def check(doc: dict[str, Any], response: str, instance: Any) -> None:
    ref = response_schema_ref(doc, response)
    errors = schema_errors(doc, ref, instance)
    assert not errors, f"{response}: {errors}\n{instance}"


async def test_portal_api_responses_match_konnect(api):
    doc = without_discriminators(spec("dev-portal-v2.yaml"))
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    h = world.as_dev()
    created = await api.client.post("/api/v2/applications", json={"name": "compat"}, headers=h)
    check(doc, "ApplicationCreation", created.json())
    app_id = created.json()["id"]
    check(doc, "GetApplication", (await api.client.get(f"/api/v2/applications/{app_id}", headers=h)).json())
    check(doc, "ListApplications", (await api.client.get("/api/v2/applications", headers=h)).json())
    patched = await api.client.patch(f"/api/v2/applications/{app_id}", json={"description": "d"}, headers=h)
    check(doc, "ApplicationUpdate", patched.json())
    check(doc, "ListAuthStrategies", (await api.client.get("/api/v2/applications/auth-strategies", headers=h)).json())

    base = f"/api/v2/applications/{app_id}"
    key = await api.client.post(f"{base}/credentials", json={"display_name": "ci"}, headers=h)
    check(doc, "CredentialCreation", key.json())
    check(doc, "ListCredentials", (await api.client.get(f"{base}/credentials", headers=h)).json())

    reg = await api.client.post(f"{base}/registrations", json={"product_version_id": str(world.version_id)}, headers=h)
    check(doc, "CreateRegistration", reg.json())
    check(doc, "GetRegistration", (await api.client.get(f"{base}/registrations/{reg.json()['id']}", headers=h)).json())
    check(doc, "ListRegistrations", (await api.client.get(f"{base}/registrations", headers=h)).json())

    admin = without_discriminators(spec("portal-management-v2.yaml"))
    apps = f"/v2/portals/{world.portal_id}/applications"
    check(admin, "ListApplications", (await api.client.get(apps)).json())
    check(admin, "GetApplication", (await api.client.get(f"{apps}/{app_id}")).json())
    regs = f"{apps}/{app_id}/registrations"
    check(admin, "ListApplicationRegistrations", (await api.client.get(regs)).json())
    reg_path = f"{regs}/{reg.json()['id']}"
    check(admin, "GetApplicationRegistration", (await api.client.get(reg_path)).json())
    updated = await api.client.patch(reg_path, json={"status": "approved"})
    check(admin, "UpdateApplicationRegistration", updated.json())


async def test_self_managed_application_matches_konnect(api):
    doc = without_discriminators(spec("dev-portal-v2.yaml"))
    world = await make_world(api.runtime, api.client, provider=None, strategy=SELF_MANAGED)
    created = await api.client.post(
        "/api/v2/applications", json={"name": "own", "reference_id": "client-9"}, headers=world.as_dev()
    )
    assert created.status_code == 201
    check(doc, "ApplicationCreation", created.json())
    check(
        doc,
        "ListAuthStrategies",
        (await api.client.get("/api/v2/applications/auth-strategies", headers=world.as_dev())).json(),
    )
