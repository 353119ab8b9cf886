"""Small helpers the vendor contract tests share: applications, a recording sleep, a secret-free log check."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from keystile.dcr.types import AppMetadata, StrategyInfo

PROVIDER_ID = "7d1f0c8e-2a4b-4c6d-8e0f-1a2b3c4d5e6f"
DEVELOPER_ID = "0b7c1e2d-3f4a-4b5c-8d6e-7f8091a2b3c4"
PORTAL_ID = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"


class SleepRecorder:
    """An injectable `sleep` that returns at once and remembers every delay asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_app(
    name: str = "Orders",
    *,
    redirect_uri: str | None = None,
    scopes: tuple[str, ...] = ("orders:read",),
    strategy: StrategyInfo | None = None,
    created_at: datetime | None = None,
    description: str = "Order lookups for the shop",
    application_id: uuid.UUID | None = None,
) -> AppMetadata:
    return AppMetadata(
        application_id=application_id or uuid.uuid4(),
        name=name,
        description=description,
        redirect_uri=redirect_uri,
        scopes=scopes,
        developer_id=DEVELOPER_ID,
        portal_id=PORTAL_ID,
        auth_strategy_id="9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
        dcr_provider_id=PROVIDER_ID,
        organization_id="1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
        strategy=strategy or StrategyInfo(scopes=scopes),
        created_at=created_at or datetime.now(UTC),
    )


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture, secrets: Iterable[str | SecretStr | None]) -> None:
    """No captured log line (message, args, or extra fields) contains any of `secrets`."""
    values = [s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets]
    values = [v for v in values if v]
    assert values, "the check needs at least one secret"
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for record in caplog.records:
        text = " ".join([record.getMessage(), repr(record.__dict__)])
        for value in values:
            assert value not in text, f"a secret leaked into the log: {record.getMessage()}"


def capture_dcr_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keystile")
