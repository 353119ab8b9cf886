"""Property-based: schemathesis drives the `/api/v2/applications…` operations of the served OpenAPI document
in-process, as a signed-in developer with a key_auth application, and finds no 5xx."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy.pool import NullPool

from keystile.app import create_app
from keystile.services import applications, installation, strategies
from keystile.services.context import SYSTEM, Actor, Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.db import create_engine, session_factory
from keystile.store.models import Portal
from keystile.store.vault import Vault
from tests.portal_helpers import approved_developer, ensure_default_portal

STATE: dict[str, str] = {}


@pytest.fixture(scope="module")
def portal_schema(tmp_path_factory: pytest.TempPathFactory):
    data: Path = tmp_path_factory.mktemp("fuzz-apps")
    url = f"sqlite+aiosqlite:///{data / 'k.db'}"
    settings_ = Settings(data_dir=data, database_url=url)
    engine = create_engine(url, poolclass=NullPool)
    rt = Runtime(settings_, engine, session_factory(engine), Vault(bytes(32)), httpx.AsyncClient(timeout=2))

    async def prepare() -> None:
        await migrate.upgrade(engine)
        await installation.ensure(rt)
        portal_id = await ensure_default_portal(rt)
        async with rt.unit(SYSTEM) as ctx:
            strategy = await strategies.create(
                ctx,
                {
                    "name": "keys",
                    "display_name": "API key",
                    "strategy_type": "key_auth",
                    "configs": {"key-auth": {"key_names": ["apikey"]}},
                },
            )
        async with rt.unit(SYSTEM) as ctx:
            portal = await ctx.session.get(Portal, portal_id)
            assert portal is not None
            portal.default_application_auth_strategy_id = uuid.UUID(strategy["id"])
            await ctx.session.commit()
        dev = await approved_developer(rt)
        STATE["token"] = dev.access_token
        async with rt.unit(Actor("developer", str(dev.developer_id), "Fuzz Dev")) as ctx:
            STATE["app"] = (await applications.create(ctx, {"name": "fuzzed"}))["id"]

    asyncio.run(prepare())
    app = create_app(settings_, runtime=rt)
    return schemathesis.openapi.from_asgi("/v2/openapi.json", app)


def test_application_endpoints_never_answer_5xx(portal_schema):
    auth = {"Authorization": f"Bearer {STATE['token']}"}
    checked = []
    calls: list[int] = []
    for result in portal_schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/api/v2/applications"):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            # half the cases on the developer's real application, so the handlers past the ownership check run
            calls.append(1)
            mine = len(calls) % 2 == 0 and case.method != "DELETE"
            if mine and case.path_parameters and "applicationId" in case.path_parameters:
                case.path_parameters["applicationId"] = STATE["app"]
            response = case.call(headers=auth)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)

        run()
        checked.append(operation.label)
    assert len(checked) >= 12, checked
