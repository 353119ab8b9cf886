"""Compatibility: keystile's developer-account and catalog responses validate against Konnect's published Portal
API schemas (../shared/specs/konnect/dev-portal-v2.yaml, read in place), extension fields aside; the admin
developer objects against portal-management-v2.yaml."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from keystile.store.models import Developer, Portal
from tests.integration.portal.conftest import PortalEnv
from tests.integration.portal.seed import seed_catalog
from tests.konnect_specs import response_schema_ref, schema_errors, spec
from tests.portal_helpers import approved_developer

DEV_PORTAL = "dev-portal-v2.yaml"
PASSWORD = "correct horse battery staple"


def assert_valid(doc: dict[str, Any], ref: str, instance: Any) -> None:
    errors = schema_errors(doc, ref, instance)
    assert not errors, f"{ref}: {errors}\n{instance}"


def problem_ref(doc: dict[str, Any], response: str) -> str:
    content = doc["components"]["responses"][response]["content"]
    ref: str = content["application/problem+json"]["schema"]["$ref"]
    return ref


async def test_account_responses_match_konnect(portal_env: PortalEnv):
    env = portal_env
    doc = spec(DEV_PORTAL)
    async with env.runtime.sessions() as s:
        await s.execute(update(Portal).where(Portal.id == env.portal_id).values(auto_approve_developers=True))
        await s.commit()

    r = await env.client.post("/api/v2/developer", json={"email": "compat@example.com", "full_name": "Compat Dev"})
    assert r.status_code == 201
    verify = await env.client.post(
        "/api/v2/developer/verify-email", json={"token": env.last_token("compat@example.com")}
    )
    assert verify.status_code == 202
    assert_valid(doc, response_schema_ref(doc, "VerifyEmailResponse"), verify.json())
    again = await env.client.post(
        "/api/v2/developer/verify-email", json={"token": env.last_token("compat@example.com")}
    )
    assert again.status_code == 410
    assert_valid(doc, problem_ref(doc, "Gone"), again.json())

    short = await env.client.post(
        "/api/v2/developer/reset-password", json={"token": verify.json()["token"], "password": "x"}
    )
    assert short.status_code == 400
    assert_valid(doc, problem_ref(doc, "BadRequest"), short.json())
    await env.client.post(
        "/api/v2/developer/reset-password", json={"token": verify.json()["token"], "password": PASSWORD}
    )

    wrong = await env.client.post(
        "/api/v2/developer/authenticate", json={"username": "compat@example.com", "password": "not the password"}
    )
    assert wrong.status_code == 401
    assert_valid(doc, problem_ref(doc, "Unauthorized"), wrong.json())
    example = doc["components"]["examples"]["401-Unauthorized"]["value"]
    assert (wrong.json()["title"], wrong.json()["detail"]) == (example["title"], example["detail"])

    async with env.runtime.sessions() as s:
        await s.execute(update(Developer).where(Developer.email == "compat@example.com").values(status="pending"))
        await s.commit()
    pending = await env.client.post(
        "/api/v2/developer/authenticate", json={"username": "compat@example.com", "password": PASSWORD}
    )
    example = doc["components"]["examples"]["401-Account-Not-Approved"]["value"]
    assert (pending.json()["title"], pending.json()["detail"]) == (example["title"], example["detail"])
    async with env.runtime.sessions() as s:
        await s.execute(update(Developer).where(Developer.email == "compat@example.com").values(status="approved"))
        await s.commit()

    ok = await env.client.post(
        "/api/v2/developer/authenticate", json={"username": "compat@example.com", "password": PASSWORD}
    )
    assert ok.status_code == 204
    me = await env.client.get("/api/v2/developer/me")
    assert me.status_code == 200
    assert_valid(doc, response_schema_ref(doc, "MeResponse"), me.json())

    portal = await env.client.get("/api/v2/portal")
    assert_valid(doc, response_schema_ref(doc, "GetPortalContextResponse"), portal.json())


async def test_catalog_responses_match_konnect(portal_env: PortalEnv):
    env = portal_env
    doc = spec(DEV_PORTAL)
    cat = await seed_catalog(env.runtime, env.portal_id)
    async with env.runtime.sessions() as s:
        await s.execute(update(Portal).where(Portal.id == env.portal_id).values(is_public=True))
        await s.commit()
    base = f"/api/v2/products/{cat.product_id}"
    for path, response in (
        ("/api/v2/products", "ProductList"),
        (base, "ProductGet"),
        (f"{base}/versions", "ProductListVersions"),
        (f"{base}/versions/{cat.version_id}", "ProductVersionGet"),
        (f"{base}/versions/{cat.bare_version_id}", "ProductVersionGet"),
        (f"{base}/versions/{cat.version_id}/spec", "ProductVersionSpecGet"),
        (f"{base}/versions/{cat.version_id}/spec/operations", "ProductVersionSpecOperationsGet"),
    ):
        r = await env.client.get(path)
        assert r.status_code == 200, path
        assert_valid(doc, response_schema_ref(doc, response), r.json())
    missing = await env.client.get(f"{base}/versions/{cat.unpublished_version_id}")
    assert missing.status_code == 404
    assert_valid(doc, problem_ref(doc, "NotFound"), missing.json())


async def test_admin_developer_matches_konnect(portal_env: PortalEnv):
    env = portal_env
    doc = spec("portal-management-v2.yaml")
    dev = await approved_developer(env.runtime)
    one = await env.admin.get(f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}")
    page = await env.admin.get(f"/v2/portals/{env.portal_id}/developers")
    patched = await env.admin.patch(
        f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}", json={"status": "revoked"}
    )
    assert one.status_code == page.status_code == patched.status_code == 200
    assert_valid(doc, response_schema_ref(doc, "GetDeveloper"), one.json())
    assert_valid(doc, response_schema_ref(doc, "UpdateDeveloper"), patched.json())
    assert_valid(doc, response_schema_ref(doc, "ListDevelopers"), page.json())
