"""Fixtures for the Portal API tests: an in-process app on the test runtime, a mail outbox folder, cheap argon2.

`portal_env` gives `client` (no credentials; Host `testserver` → the `default` portal), `admin` (same app, admin
token), `runtime`, `portal_id`, `outbox` (the KEYSTILE_MAIL_OUTBOX folder) and `mails()` (parsed .eml files).
"""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from keystile.app import create_app
from keystile.services.context import Runtime
from tests.portal_helpers import ensure_default_portal

TOKEN = re.compile(r"token=([0-9a-f-]{36})")


@dataclass
class PortalEnv:
    client: httpx.AsyncClient
    admin: httpx.AsyncClient
    runtime: Runtime
    portal_id: uuid.UUID
    outbox: Path

    def mails(self) -> list[EmailMessage]:
        if not self.outbox.exists():
            return []
        files = sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        out = []
        for path in files:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def last_token(self, to: str) -> str:
        mails = [m for m in self.mails() if m["To"] == to]
        assert mails, f"no mail to {to}"
        body = mails[-1].get_content()
        match = TOKEN.search(body)
        assert match, body
        return match.group(1)


def use_settings(runtime: Runtime, **changes: object) -> None:
    """Replace settings fields on the test runtime (the runtime is per test)."""
    runtime.settings = runtime.settings.model_copy(update=changes)


@pytest.fixture
async def portal_env(runtime: Runtime, tmp_path: Path) -> AsyncIterator[PortalEnv]:
    from keystile.services import admin_tokens

    outbox = tmp_path / "outbox"
    use_settings(runtime, mail_outbox=outbox)
    # argon2id still, with cheap parameters so throttling tests stay fast
    runtime.extras["password_hasher"] = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    portal_id = await ensure_default_portal(runtime)
    app = create_app(runtime.settings, runtime=runtime)
    _, token = await admin_tokens.create(runtime, "portal-tests")
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"}
        ) as admin,
    ):
        yield PortalEnv(client, admin, runtime, portal_id, outbox)
