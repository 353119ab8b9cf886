"""Shared test plumbing: environment hygiene and the skip-or-fail rule for missing services."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

pytest_plugins = ["tests.fixtures.oidc_peer"]

REQUIRE_ALL = os.environ.get("KEYSTILE_REQUIRE_ALL") == "1"

# Fuzz tests explore fresh examples on every local run; CI draws the same examples each time, so a landing is
# decided by the change and not by the dice. A local find becomes a fixed regression example or a fix.
settings.register_profile("ci", derandomize=True)
if REQUIRE_ALL:
    settings.load_profile("ci")


def missing_service(reason: str) -> None:
    """Skip the test with a visible reason, or fail it when KEYSTILE_REQUIRE_ALL=1 (CI)."""
    if REQUIRE_ALL:
        pytest.fail(f"required service missing (KEYSTILE_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _scrub_keystile_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEYSTILE_* setting from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("KEYSTILE_") and key != "KEYSTILE_REQUIRE_ALL" and not key.startswith("KEYSTILE_TEST_"):
            monkeypatch.delenv(key, raising=False)


pytest_plugins += ["tests.database", "tests.api_client", "tests.fixtures.builtin_idp"]
