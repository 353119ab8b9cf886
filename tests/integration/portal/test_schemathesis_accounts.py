"""Property-based tests of the developer-account and catalog operations of `/api/v2`: schemathesis drives the
served OpenAPI document in-process (a SQLite file of its own, a seeded catalog, a signed-in developer) with a
bounded number of examples per operation and finds no 5xx and no response that breaks the documented schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from sqlalchemy.pool import NullPool

from keystile.app import create_app
from keystile.services import installation
from keystile.services.context import Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.db import create_engine, session_factory
from keystile.store.vault import Vault
from tests.integration.portal.seed import seed_catalog
from tests.portal_helpers import approved_developer, ensure_default_portal

STATE: dict[str, str] = {}
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.status_code_conformance,
    checks.content_type_conformance,
]
MINE = ("/api/v2/developer", "/api/v2/portal", "/api/v2/products")
THEIRS = ("/applications",)  # the applications engineer's operations under /api/v2/products/…/applications


@pytest.fixture(scope="module")
def portal_schema(tmp_path_factory: pytest.TempPathFactory):
    data: Path = tmp_path_factory.mktemp("schemathesis-portal")
    url = f"sqlite+aiosqlite:///{data / 'k.db'}"
    settings_ = Settings(data_dir=data, database_url=url, mail_outbox=data / "outbox")
    engine = create_engine(url, poolclass=NullPool)
    rt = Runtime(settings_, engine, session_factory(engine), Vault(bytes(32)), httpx.AsyncClient(timeout=2))
    rt.extras["password_hasher"] = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

    async def prepare() -> None:
        await migrate.upgrade(engine)
        await installation.ensure(rt)
        portal_id = await ensure_default_portal(rt)
        cat = await seed_catalog(rt, portal_id)
        dev = await approved_developer(rt, portal_id=portal_id)
        STATE["token"] = dev.access_token
        STATE["productId"] = str(cat.product_id)
        STATE["productVersionId"] = str(cat.version_id)

    asyncio.run(prepare())
    app = create_app(settings_, runtime=rt)
    return schemathesis.openapi.from_asgi("/v2/openapi.json", app)


def test_portal_account_and_catalog_operations_never_5xx(portal_schema):
    auth = {"Authorization": f"Bearer {STATE['token']}"}
    checked = []
    operations = [r.ok() for r in portal_schema.get_all_operations()]
    # logout ends the developer's sessions: it runs last
    operations.sort(key=lambda op: op.path.endswith("/logout"))
    for operation in operations:
        if not operation.path.startswith(MINE) or operation.path.endswith(THEIRS):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            for name, value in (case.path_parameters or {}).items():
                if name in STATE and str(value)[:1] in "01234567":
                    case.path_parameters[name] = STATE[name]  # about half the cases reach seeded rows
            response = case.call(headers=auth)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            case.validate_response(response, checks=CHECKS)

        run()
        checked.append(operation.label)
    assert len(checked) >= 15, checked
