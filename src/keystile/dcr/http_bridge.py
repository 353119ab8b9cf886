"""`http`: a Konnect-compatible HTTP DCR bridge (contracts/dcr-providers.md §2.5).

Four routes under `{base}` (`dcr_base_url` without a trailing `/`), each with `X-API-KEY`: `POST {base}/` registers
(`ApplicationPayload`, exactly 11 fields), `DELETE {base}/{client_id}` deregisters (404 = gone),
`POST {base}/{client_id}/new-secret` rotates, `POST {base}/{client_id}/event-hook` pushes events. Any 2xx is
success. Flags: `disable_refresh_secret` (no rotation; refused before any call), `disable_event_hooks` (no event
calls); `allow_multiple_credentials` is stored but changes nothing (the bridge contract has no credential routes).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from keystile.dcr.base import BaseProvider, read_time
from keystile.dcr.naming import client_name, registration_scopes
from keystile.dcr.types import (
    AppMetadata,
    Capabilities,
    ClientRef,
    ClientUpdate,
    HookEvent,
    IssuedClient,
    RotatedSecret,
    RotateMode,
    VerifyReport,
)
from keystile.domain.errors import ProviderError

__all__ = ["HttpBridgeProvider"]

ALL_EVENTS = frozenset({"update_application", "add_registration", "remove_registration"})
WRONG_API_KEY = "the bridge rejected keystile's API key"


class HttpBridgeProvider(BaseProvider):
    """HTTP DCR bridge adapter; see the module docstring."""

    provider_type: ClassVar[str] = "http"
    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("api_key",)
    REQUIRED_SETTINGS: ClassVar[tuple[str, ...]] = ("dcr_base_url",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            rotate=not self.config.setting("disable_refresh_secret", False),
            events=frozenset() if self.config.setting("disable_event_hooks", False) else ALL_EVENTS,
        )

    @property
    def base(self) -> str:
        return str(self.config.setting("dcr_base_url")).rstrip("/")

    def client_url(self, client_id: str, tail: str = "") -> str:
        """`{base}/{client_id}{tail}` with `client_id` percent-encoded as one path segment."""
        return f"{self.base}/{quote(client_id, safe='')}{tail}"

    def headers(self) -> dict[str, str]:
        api_key = self.config.secrets["api_key"]  # the registry refuses to build without it
        return {"X-API-KEY": api_key.get_secret_value(), "Accept": "application/json"}

    def status_error(
        self,
        operation: str,
        response: httpx.Response,
        *,
        idempotent: bool,
        known: Collection[SecretStr | str | None] = (),
    ) -> ProviderError:
        """As the base, and 401 reads "the bridge rejected keystile's API key"."""
        error = super().status_error(operation, response, idempotent=idempotent, known=known)
        if response.status_code == 401:
            error = self.error(
                operation,
                status=401,
                code=error.code or "http_401",
                description=WRONG_API_KEY,
                retry_after=error.retry_after,
                idp_request_id=error.idp_request_id,
            )
        return error

    # -- payloads ---------------------------------------------------------------------------------------------

    def application_payload(self, app: AppMetadata) -> dict[str, Any]:
        """`ApplicationPayload`: exactly the 11 fields of the reference schema."""
        return {
            "redirect_uris": [app.redirect_uri] if app.redirect_uri else [],
            "client_name": client_name(app.name, app.application_id),
            "grant_types": list(app.strategy.auth_methods),
            "scopes": registration_scopes(app.scopes),
            "token_endpoint_auth_method": "client_secret_basic",
            "application_description": app.description or "",
            "portal_id": app.portal_id,
            "organization_id": app.organization_id,
            "developer_id": app.developer_id,
            "auth_strategy_id": app.auth_strategy_id,
            "dcr_provider_id": app.dcr_provider_id or self.provider_id,
        }

    def event_payload(self, ref: ClientRef, event: HookEvent) -> dict[str, Any]:
        """`EventHook`: the common fields, plus `redirect_uris` for `update_application`, plus
        `api_product_version_id` and `audience` (when known) for registration events."""
        app = event.app
        payload: dict[str, Any] = {
            "event_type": event.event_type,
            "client_id": ref.client_id,
            "application_id": str(app.application_id),
            "application_name": app.name,
            "application_description": app.description or "",
            "portal_id": app.portal_id,
            "organization_id": app.organization_id,
            "developer_id": app.developer_id,
            "auth_strategy_id": app.auth_strategy_id,
            "dcr_provider_id": app.dcr_provider_id or self.provider_id,
        }
        if event.event_type == "update_application":
            payload["redirect_uris"] = [app.redirect_uri] if app.redirect_uri else []
        else:
            payload["api_product_version_id"] = event.api_product_version_id
            audience = event.audience or app.strategy.audience
            if audience:
                payload["audience"] = audience
        return payload

    # -- operations -------------------------------------------------------------------------------------------

    async def register(self, app: AppMetadata) -> IssuedClient:
        """`POST {base}/`. A 2xx without `client_id` or `client_secret` is `invalid_response` (outcome unknown),
        after a compensating DELETE when a `client_id` is readable.

        Raises:
            ProviderError: the bridge refused (its `error_description`), did not answer, or answered badly.
        """
        response = await self.request(
            "register",
            "POST",
            f"{self.base}/",
            idempotent=False,
            headers=self.headers(),
            json_body=self.application_payload(app),
        )
        try:
            body = self.json_object(response, "register", required=("client_id", "client_secret"), outcome_unknown=True)
        except ProviderError as exc:
            client_id = exc.extra.get("client_id")
            if isinstance(client_id, str):
                await self._compensate(client_id, exc)
            raise
        handles: dict[str, Any] = {}
        metadata = {k: v for k, v in body.items() if k != "client_secret"}
        return IssuedClient(
            client_id=str(body["client_id"]),
            client_secret=SecretStr(str(body["client_secret"])),
            issued_at=read_time(body, "client_id_issued_at"),
            expires_at=read_time(body, "client_secret_expires_at"),
            handles=handles,
            metadata=metadata,
        )

    async def _compensate(self, client_id: str, error: ProviderError) -> None:
        try:
            await self.deregister(ClientRef(client_id=client_id, application_id=uuid.UUID(int=0)))
        except ProviderError as exc:
            error.extra["compensation"] = f"the DELETE of {client_id} failed: {exc}"
        else:
            error.extra["compensation"] = f"{client_id} deleted"
            error.outcome_unknown = False

    async def deregister(self, ref: ClientRef) -> None:
        """`DELETE {base}/{client_id}`; 404 = already gone."""
        await self.request(
            "deregister",
            "DELETE",
            self.client_url(ref.client_id),
            idempotent=True,
            headers=self.headers(),
            accept={404},
        )

    async def rotate_secret(self, ref: ClientRef, mode: RotateMode = "replace") -> RotatedSecret:
        """`POST {base}/{client_id}/new-secret`; the answer's `client_id` must be the path's.

        Raises:
            ProviderError: `unsupported_operation` with `disable_refresh_secret` or mode `add` (no call made);
                `invalid_response` for a bad answer; any bridge failure.
        """
        if mode != "replace":
            self.unsupported("rotate_secret", "the bridge keeps one secret per client")
        if not self.capabilities.rotate:
            self.unsupported("rotate_secret", "secret refresh is disabled for this provider (disable_refresh_secret)")
        response = await self.request(
            "rotate_secret",
            "POST",
            self.client_url(ref.client_id, "/new-secret"),
            idempotent=False,
            headers=self.headers(),
        )
        body = self.json_object(response, "rotate_secret", required=("client_id", "client_secret"))
        if body["client_id"] != ref.client_id:
            raise self.error(
                "rotate_secret",
                status=response.status_code,
                code="invalid_response",
                description=f"the answer names client {body['client_id']!r}, not {ref.client_id!r}",
            )
        return RotatedSecret(
            client_secret=SecretStr(str(body["client_secret"])),
            expires_at=read_time(body, "client_secret_expires_at"),
        )

    async def on_event(self, ref: ClientRef, event: HookEvent) -> ClientUpdate | None:
        """`POST {base}/{client_id}/event-hook` (no call with `disable_event_hooks`); the answer is ignored."""
        if not self.capabilities.acts_on(event.event_type):
            return None
        await self.request(
            "on_event",
            "POST",
            self.client_url(ref.client_id, "/event-hook"),
            idempotent=False,
            headers=self.headers(),
            json_body=self.event_payload(ref, event),
        )
        return None

    # -- verify -----------------------------------------------------------------------------------------------

    async def verify(self, trial: bool = False, app: AppMetadata | None = None) -> VerifyReport:
        """`DELETE {base}/keystile-verify-<random>`: 401 → the API key is rejected; no answer or 5xx → unreachable;
        anything else → reachable. The issuer's discovery is a warning only (the gateway needs it for JWTs).
        `trial`: register, then deregister."""
        report = VerifyReport()
        try:
            await self.discovery("verify")
        except ProviderError as exc:
            report.warning("discovery", f"issuer discovery failed (the gateway needs it for JWTs): {exc.description}")
        else:
            report.passed("discovery", "issuer metadata fetched; issuer matches")
        probe_id = f"keystile-verify-{secrets.token_hex(8)}"
        try:
            response = await self.request(
                "verify",
                "DELETE",
                self.client_url(probe_id),
                idempotent=True,
                headers=self.headers(),
                accept=set(range(400, 500)),
            )
        except ProviderError as exc:
            report.failed("management_credentials", f"the bridge is unreachable: {exc}")
        else:
            if response.status_code == 401:
                report.failed("management_credentials", WRONG_API_KEY)
            else:
                report.passed(
                    "management_credentials", f"the bridge answered {response.status_code} to a DELETE of {probe_id}"
                )
        if not trial:
            report.skipped("trial_registration", "not requested")
        elif report.errors:
            report.skipped("trial_registration", "skipped: the checks above failed")
        else:
            await self.verify_trial(report, app)
        return report

    async def trial_steps(self, app: AppMetadata, issued: IssuedClient, ref: ClientRef) -> tuple[ClientRef, list[str]]:
        """The bridge's own IdP issues tokens; the trial only registers and deregisters."""
        return ref, []
