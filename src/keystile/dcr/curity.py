"""`curity`: Curity Identity Server DCR (contracts/dcr-providers.md §2.3) — RFC 7591/7592 with a one-time `dcr` token.

The `rfc7591` adapter with different data: the IAT is **always** minted (`initial_client_id` /
`initial_client_secret`, scope `iat_scope`, default `dcr`) and fresh per registration; the registration endpoint
always comes from discovery; a machine client's body carries no `response_types`; every PUT rotates secret and RAT.
Two overrides: a lost PUT answer is recovered with a `management_scope` token when configured (else the error is
flagged `needs_attention`), and a 401 on a first DELETE is retried with that token (else it is an error).

**Never GET** `registration_client_uri`: a GET rotates secret and RAT too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr

from keystile.dcr.rfc7591 import Rfc7591Provider
from keystile.dcr.types import ClientRef, VerifyReport
from keystile.domain.errors import ProviderError

__all__ = ["CurityProvider"]


class CurityProvider(Rfc7591Provider):
    """Curity DCR adapter; see the module docstring."""

    provider_type: ClassVar[str] = "curity"
    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("initial_client_secret",)
    REQUIRED_SETTINGS: ClassVar[tuple[str, ...]] = ("initial_client_id",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("initial_client_secret",)
    MACHINE_RESPONSE_TYPES: ClassVar[list[str] | None] = None
    ENDPOINT_SETTING: ClassVar[str | None] = None

    @property
    def rotates_on_put(self) -> bool:
        """Every Curity PUT rotates the secret (and the RAT): `rotate` and `update_rotates_secret` hold."""
        return True

    @property
    def iat_client(self) -> tuple[str, SecretStr, str] | None:
        client_id = self.config.setting("initial_client_id")
        secret = self.config.secret("initial_client_secret")
        if not client_id or secret is None:
            return None
        return str(client_id), secret, str(self.config.setting("iat_scope", "dcr"))

    @property
    def management_scope(self) -> str | None:
        scope = self.config.setting("management_scope")
        return str(scope) if scope else None

    async def initial_access_token(self, operation: str) -> SecretStr | None:
        """A fresh `iat_scope` token for each registration: never cached or reused."""
        client = self.iat_client
        if client is None:
            self.unsupported(operation, "initial_client_id and initial_client_secret are required")
        return await self.mint_token(operation, client[2])

    async def put_with_recovery(self, operation: str, ref: ClientRef, body: dict[str, Any]) -> dict[str, Any]:
        """A lost PUT answer means a lost RAT: repeat the PUT with a `management_scope` token when configured;
        without it the error carries `extra["needs_attention"] = True`."""
        try:
            return await self.put_client(operation, ref, body)
        except ProviderError as exc:
            scope = self.management_scope
            if not exc.outcome_unknown or scope is None:
                if exc.outcome_unknown:
                    exc.extra["needs_attention"] = True
                raise
        token = await self.mint_token(operation, scope)
        return await self.put_client(operation, ref, body, bearer=token)

    async def deregister_rejected(self, ref: ClientRef, uri: str, status: int, content: bytes) -> None:
        """A first DELETE answered 401 (the stored RAT is stale): with `management_scope`, DELETE again with such a
        token (404 = gone); without it, an error."""
        scope = self.management_scope
        if scope is None:
            raise self._rat_error("deregister", status, content, ref)
        token = await self.mint_token("deregister", scope)
        await self.request(
            "deregister", "DELETE", uri, idempotent=True, headers=self._bearer(token), accept={404}, known=[token]
        )

    async def verify_credentials(self, report: VerifyReport) -> None:
        """A `dcr` token is issued to the admin client."""
        client = self.iat_client
        if client is None:  # pragma: no cover - the registry refuses to build without them
            report.failed("management_credentials", "initial_client_id and initial_client_secret are required")
            return
        try:
            await self.mint_token("verify", client[2])
        except ProviderError as exc:
            report.failed("management_credentials", f"no {client[2]!r} token was issued to {client[0]}: {exc}")
            return
        report.passed("management_credentials", f"a {client[2]!r} token was issued to {client[0]}")
