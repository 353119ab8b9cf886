"""Helpers for the tests of keystile.dcr that this package's core and generic adapters share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from keystile.dcr.base import TokenCache
from keystile.dcr.registry import build_adapter
from keystile.dcr.types import AppMetadata, StrategyInfo

PROVIDER_ID = "3c0c2f4e-8a51-4d0e-9f3b-5a7d1e2c4b6a"
TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)


class NoSleep:
    """An injectable `sleep` that returns at once and records the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def app(
    name: str = "Orders",
    *,
    redirect_uri: str | None = None,
    scopes: tuple[str, ...] = ("read",),
    strategy: StrategyInfo | None = None,
    application_id: uuid.UUID | None = None,
    description: str = "Order lookups",
) -> AppMetadata:
    return AppMetadata(
        application_id=application_id or uuid.uuid4(),
        name=name,
        description=description,
        redirect_uri=redirect_uri,
        scopes=scopes,
        developer_id="dev-1",
        portal_id="portal-1",
        auth_strategy_id="strategy-1",
        dcr_provider_id=PROVIDER_ID,
        organization_id="org-1",
        strategy=strategy or StrategyInfo(scopes=scopes),
        created_at=datetime.now(UTC),
    )


def build(
    provider_type: str,
    transport: httpx.AsyncBaseTransport,
    *,
    issuer: str,
    dcr_config: dict[str, Any],
    secrets: dict[str, str] | None = None,
    sleep: NoSleep | None = None,
    **options: Any,
) -> Any:
    client = httpx.AsyncClient(transport=transport, timeout=TIMEOUT)
    return build_adapter(
        provider_type=provider_type,
        provider_id=PROVIDER_ID,
        issuer=issuer,
        dcr_config=dcr_config,
        secrets=secrets or {},
        client=client,
        token_cache=TokenCache(),
        sleep=sleep or NoSleep(),
        **options,
    )


def logged_text(records: Iterable[Any]) -> str:
    """Every captured log record rendered with its message, args and extra fields."""
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        parts.append(repr({k: v for k, v in vars(record).items() if k not in ("msg", "args")}))
    return "\n".join(parts)


def assert_secrets_absent(text: str, secrets: Iterable[str | SecretStr | None]) -> None:
    values = [s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets]
    values = [v for v in values if v]
    assert values, "the check needs at least one secret"
    for value in values:
        assert value not in text, "a secret was logged"
