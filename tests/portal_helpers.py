"""Helpers for Portal API tests: the default portal and approved developers with live sessions.

    portal = await ensure_default_portal(runtime)             # the `default` portal (created when absent)
    dev = await approved_developer(runtime, email="jane@example.com")
    await client.get("/api/v2/developer/me", headers=dev.bearer)           # Authorization: Bearer
    await client.get("/api/v2/developer/me", headers=dev.cookie_header)    # portalaccesstoken cookie
    dev.developer_id, dev.portal_id, dev.access_token, dev.refresh_token

Writes authenticated by cookie need `dev.csrf_headers` (X-Requested-With) as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from keystile.services import developers
from keystile.services.context import Runtime
from keystile.store.models import Portal

__all__ = ["PortalDeveloper", "approved_developer", "ensure_default_portal"]


@dataclass(frozen=True)
class PortalDeveloper:
    developer_id: uuid.UUID
    portal_id: uuid.UUID
    email: str
    full_name: str
    access_token: str
    refresh_token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def cookies(self) -> dict[str, str]:
        """For `client.cookies.update(...)`."""
        return {"portalaccesstoken": self.access_token}

    @property
    def cookie_header(self) -> dict[str, str]:
        """A `Cookie` header (httpx deprecates per-request `cookies=`)."""
        return {"Cookie": f"portalaccesstoken={self.access_token}"}

    @property
    def csrf_headers(self) -> dict[str, str]:
        return {"X-Requested-With": "XMLHttpRequest"}


async def ensure_default_portal(runtime: Runtime, **fields: object) -> uuid.UUID:
    """The id of the portal named `default`, created (with `fields`) when absent; existing fields are updated."""
    async with runtime.sessions() as session:
        row = (await session.execute(select(Portal).where(Portal.name == "default"))).scalar_one_or_none()
        if row is None:
            row = Portal(id=uuid.uuid4(), name="default", display_name="Developer Portal")
            session.add(row)
        for key, value in fields.items():
            setattr(row, key, value)
        await session.commit()
        return row.id


async def approved_developer(
    runtime: Runtime,
    *,
    portal_id: uuid.UUID | None = None,
    email: str | None = None,
    full_name: str = "Test Developer",
    password: str | None = None,
) -> PortalDeveloper:
    """An approved, verified developer with a live session (through services.developers)."""
    pid = portal_id or await ensure_default_portal(runtime)
    email = email or f"dev-{uuid.uuid4().hex[:10]}@example.com"
    tokens = await developers.create_approved_developer(runtime, pid, email, full_name, password)
    return PortalDeveloper(
        tokens.developer_id, pid, email.lower(), full_name, tokens.access_token, tokens.refresh_token
    )
