"""The fuzz runs cover the whole served document: every operation of `/v2/openapi.json` belongs to the Management
API run (tests/integration/fuzz/test_schemathesis_management.py) or the Portal API run
(tests/integration/portal/test_schemathesis_accounts.py). Each run asserts that it called every operation of its
API with valid credentials and reached seeded rows, so a new endpoint is fuzzed, or the build fails."""

from __future__ import annotations

from pathlib import Path

from keystile.app import create_app
from keystile.settings import Settings
from tests.integration.fuzz.harness import MANAGEMENT_API, PORTAL_API, operations_of, served_operations


def test_the_two_fuzz_runs_together_cover_every_served_operation(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"))
    document = app.openapi()
    served = served_operations(document)
    management = operations_of(document, MANAGEMENT_API)
    portal = operations_of(document, PORTAL_API)
    assert management & portal == set()
    assert sorted(served - management - portal) == []
    assert management | portal == served
    # both APIs are there (a prefix typo would leave a run with nothing to do)
    assert {label.split(" ", 1)[1].split("/")[2] for label in management} >= {"dcr-providers", "portals", "audit-logs"}
    assert {label.split(" ", 1)[1].split("/")[3] for label in portal} >= {"developer", "products", "applications"}
