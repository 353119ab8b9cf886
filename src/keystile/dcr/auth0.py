"""`auth0`: the Auth0 Management API (contracts/dcr-providers.md §2.2).

Config: `issuer` (`https://{tenant}/` or a custom domain), `initial_client_id`, `initial_client_secret`
(write-only), `initial_client_audience` (the Management API audience; needed with a custom domain),
`use_developer_managed_scopes`. `mgmt_aud` = `initial_client_audience` or `{origin}/api/v2/`; `{api}` = `mgmt_aud`
without the trailing `/`.

Management token: `POST {origin}/oauth/token` with a JSON body (`grant_type`, `client_id`, `client_secret`,
`audience`), cached in the injected `TokenCache` until `expires_in − 60 s`, single flight. A 401 from the Management
API drops it, fetches a new one once and repeats the call once.

| operation | request |
|---|---|
| register | `POST {api}/clients`, then `POST {api}/client-grants` (409 "already exists" = success) |
| deregister | `GET {api}/client-grants?client_id=…`, `DELETE {api}/client-grants/{id}` each, then |
| | `DELETE {api}/clients/{id}`; 404 = gone |
| rotate `replace` | `POST {api}/clients/{id}/rotate-secret`; the new secret may need up to 30 s → `needs_probe` |
| `update_application` | `PATCH {api}/clients/{id}` with `name`, `description`, `callbacks` |
| `add_registration` | `POST {api}/client-grants` for the event's audience (409 = success) |
| list | `GET {api}/clients?fields=client_id,name,client_metadata&include_fields=true&per_page=100&page=N` |
| probe | `POST {origin}/oauth/token`, form `grant_type=client_credentials&audience=<aud>`, Basic |

Sources: auth0/node-auth0 `src/management/api/requests/requests.ts`,
`src/management/api/resources/{clients,clientGrants}/client/Client.ts`;
auth0.com/docs/applications/rotate-client-secret;
github.com/auth0/auth0-cli/issues/1408.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from keystile.dcr.base import AccessToken, BaseProvider
from keystile.dcr.naming import client_name, registration_scopes
from keystile.dcr.types import (
    AppMetadata,
    Capabilities,
    ClientRef,
    ClientUpdate,
    HookEvent,
    IdpClient,
    IssuedClient,
    RotatedSecret,
    RotateMode,
    StrategyInfo,
    VerifyReport,
)
from keystile.domain.errors import ProviderError

__all__ = ["MANAGEMENT_PERMISSIONS", "Auth0Provider"]

MANAGEMENT_PERMISSIONS: tuple[str, ...] = (
    "read:clients",
    "create:clients",
    "update:clients",
    "delete:clients",
    "update:client_keys",
    "read:client_grants",
    "create:client_grants",
    "update:client_grants",
    "delete:client_grants",
)
_DEVELOPER_SCOPES_PERMISSION = "read:resource_servers"
_MAX_DESCRIPTION = 140
_PAGE_SIZE = 100


def _without_secret(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "client_secret"}


class Auth0Provider(BaseProvider):
    """The `auth0` adapter. Capabilities: rotate (probe needed afterwards), list clients, grant on registration."""

    provider_type: ClassVar[str] = "auth0"
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        rotate=True,
        overlap=False,
        needs_probe_on_rotate=True,
        list_clients=True,
        events=frozenset({"update_application", "add_registration"}),
    )
    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("initial_client_secret",)
    REQUIRED_SETTINGS: ClassVar[tuple[str, ...]] = ("initial_client_id",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("initial_client_secret",)

    # -- endpoints -------------------------------------------------------------------------------------------

    @property
    def management_audience(self) -> str:
        """`initial_client_audience`, else `{origin}/api/v2/`."""
        return str(self.config.setting("initial_client_audience") or f"{self.origin}/api/v2/")

    @property
    def api(self) -> str:
        return self.management_audience.rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self.origin}/oauth/token"

    # -- Management API calls --------------------------------------------------------------------------------

    async def management_token(self, operation: str, *, force_refresh: bool = False) -> AccessToken:
        """The cached Management API token (a fresh one with `force_refresh`).

        Raises:
            ProviderError: the token endpoint refused (e.g. 403 `access_denied` when the admin app lacks its grant).
        """
        secret = self.config.secret("initial_client_secret")
        return await self.client_credentials(
            operation,
            self.token_url,
            str(self.config.setting("initial_client_id")),
            secret if secret is not None else SecretStr(""),
            extra={"audience": self.management_audience},
            json_request=True,
            cache=True,
            force_refresh=force_refresh,
        )

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """One Management API call; a 401 drops the token, fetches a new one and repeats the call once."""
        token = await self.management_token(operation)
        for retry in (False, True):
            response = await self.request(
                operation,
                method,
                f"{self.api}{path}",
                idempotent=idempotent,
                headers={"Authorization": f"Bearer {token.value.get_secret_value()}"},
                json_body=json_body,
                accept={*accept} if retry else {*accept, 401},
                known=[token.value],
            )
            if response.status_code != 401 or 401 in accept:
                return response
            token = await self.management_token(operation, force_refresh=True)
        raise AssertionError("unreachable: the repeated call returns or raises")  # pragma: no cover

    # -- register --------------------------------------------------------------------------------------------

    def client_body(self, app: AppMetadata) -> dict[str, Any]:
        """The `POST /clients` body of §2.2 (tagged with the four `client_metadata` keys)."""
        body: dict[str, Any] = {
            "name": client_name(app.name, app.application_id),
            "description": app.description[:_MAX_DESCRIPTION],
            "app_type": "non_interactive",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "oidc_conformant": True,
            "jwt_configuration": {"alg": "RS256"},
            "client_metadata": {
                "keystile_application_id": str(app.application_id),
                "keystile_developer_id": str(app.developer_id),
                "keystile_portal_id": str(app.portal_id),
                "keystile_provider_id": self.provider_id,
            },
        }
        if app.redirect_uri:
            body["app_type"] = "regular_web"
            body["grant_types"] = ["authorization_code", "client_credentials"]
            body["callbacks"] = [app.redirect_uri]
        return body

    def grant_scopes(self, app: AppMetadata) -> list[str]:
        """The developer's selection with `use_developer_managed_scopes`, else the strategy's (OpenID ones removed)."""
        chosen = app.scopes if self.config.setting("use_developer_managed_scopes", False) else app.strategy.scopes
        return registration_scopes(chosen)

    async def _grant(self, operation: str, client_id: str, audience: str, scopes: list[str]) -> str | None:
        """Create a client grant; `None` when it already existed (409)."""
        response = await self._call(
            operation,
            "POST",
            "/client-grants",
            idempotent=True,
            json_body={"client_id": client_id, "audience": audience, "scope": scopes},
            accept={409},
        )
        if response.status_code == 409:
            return None
        body = self.json_object(response, operation, required=("id",))
        return str(body["id"])

    async def register(self, app: AppMetadata) -> IssuedClient:
        """Create the client, then its grant for the strategy's audience.

        Raises:
            ProviderError: `missing_audience` (before any call) when the strategy's `token_post_args` name no
                audience; else what Auth0 answered. A failed grant deletes the client first (`outcome_unknown` if
                that delete failed too).
        """
        audience = app.strategy.audience
        if not audience:
            raise self.error(
                "register",
                code="missing_audience",
                description="the auth strategy's token_post_args name no audience; Auth0 grants a client per API"
                " audience",
            )
        response = await self._call("register", "POST", "/clients", idempotent=False, json_body=self.client_body(app))
        created = self.json_object(response, "register", required=("client_id", "client_secret"), outcome_unknown=True)
        client_id = str(created["client_id"])
        secret = SecretStr(str(created["client_secret"]))
        try:
            grant_id = await self._grant("register", client_id, audience, self.grant_scopes(app))
        except ProviderError as exc:
            try:
                await self._delete_client("register", client_id, [])
            except ProviderError:
                exc.outcome_unknown = True
                exc.extra = {**exc.extra, "client_id": client_id}
            raise
        return IssuedClient(
            client_id=client_id,
            client_secret=secret,
            handles={"grant_ids": [grant_id] if grant_id else []},
            metadata=_without_secret(created),
        )

    # -- deregister ------------------------------------------------------------------------------------------

    async def _delete_client(self, operation: str, client_id: str, grant_ids: list[str]) -> None:
        for grant_id in grant_ids:
            await self._call(operation, "DELETE", f"/client-grants/{grant_id}", idempotent=True, accept={404})
        await self._call(operation, "DELETE", f"/clients/{client_id}", idempotent=True, accept={404})

    async def deregister(self, ref: ClientRef) -> None:
        """Delete the client's grants, then the client; 404 on any of them means already gone."""
        listed = await self._call(
            "deregister", "GET", f"/client-grants?{httpx.QueryParams({'client_id': ref.client_id})}", idempotent=True
        )
        grant_ids = [
            str(g["id"])
            for g in self.json_list(listed, "deregister")
            if isinstance(g, dict) and g.get("client_id") == ref.client_id and g.get("id")
        ]
        await self._delete_client("deregister", ref.client_id, grant_ids)

    # -- rotate ----------------------------------------------------------------------------------------------

    async def rotate_secret(self, ref: ClientRef, mode: RotateMode = "replace") -> RotatedSecret:
        """`rotate-secret`: the old secret stops at once, the new one may need up to 30 s (`needs_probe`).

        Raises:
            ProviderError: `unsupported_operation` for `add` (Auth0 holds one secret per client), else Auth0's answer.
        """
        if mode != "replace":
            self.unsupported("rotate_secret", "Auth0 holds one client secret per client")
        response = await self._call(
            "rotate_secret", "POST", f"/clients/{ref.client_id}/rotate-secret", idempotent=False
        )
        body = self.json_object(response, "rotate_secret", required=("client_secret",))
        return RotatedSecret(
            client_secret=SecretStr(str(body["client_secret"])), metadata=_without_secret(body), needs_probe=True
        )

    # -- events ----------------------------------------------------------------------------------------------

    async def on_event(self, ref: ClientRef, event: HookEvent) -> ClientUpdate | None:
        """`update_application`: PATCH name, description, callbacks. `add_registration`: a grant for the event's
        audience (else the strategy's); 409 = success. `remove_registration`: nothing (grants live until delete)."""
        app = event.app
        if event.event_type == "update_application":
            body = {
                "name": client_name(app.name, app.application_id),
                "description": app.description[:_MAX_DESCRIPTION],
                "callbacks": [app.redirect_uri] if app.redirect_uri else [],
            }
            response = await self._call(
                "on_event", "PATCH", f"/clients/{ref.client_id}", idempotent=True, json_body=body
            )
            return ClientUpdate(metadata=_without_secret(self.json_object(response, "on_event")))
        if event.event_type == "add_registration":
            audience = event.audience or app.strategy.audience
            if not audience:
                return None
            grant_id = await self._grant("on_event", ref.client_id, audience, self.grant_scopes(app))
            if grant_id is None:
                return None
            known = [str(g) for g in ref.handles.get("grant_ids", [])]
            return ClientUpdate(handles={"grant_ids": [*known, grant_id]})
        return None

    # -- list ------------------------------------------------------------------------------------------------

    async def list_clients(self) -> AsyncIterator[IdpClient]:
        """Clients whose `client_metadata.keystile_provider_id` is this provider, page by page."""
        page = 0
        while True:
            query = httpx.QueryParams(
                {
                    "fields": "client_id,name,client_metadata",
                    "include_fields": "true",
                    "per_page": str(_PAGE_SIZE),
                    "page": str(page),
                }
            )
            response = await self._call("list_clients", "GET", f"/clients?{query}", idempotent=True)
            rows = self.json_list(response, "list_clients")
            for row in rows:
                if not isinstance(row, dict) or not isinstance(row.get("client_id"), str):
                    continue
                metadata = row.get("client_metadata")
                if not isinstance(metadata, dict) or metadata.get("keystile_provider_id") != self.provider_id:
                    continue
                application_id = metadata.get("keystile_application_id")
                yield IdpClient(
                    client_id=row["client_id"],
                    name=str(row.get("name", "")),
                    application_id=application_id if isinstance(application_id, str) else None,
                    created_at=None,
                )
            if len(rows) < _PAGE_SIZE:
                return
            page += 1

    # -- probe and verify ------------------------------------------------------------------------------------

    async def probe_token_url(self) -> str:
        return self.token_url

    def probe_params(self, strategy: StrategyInfo | None) -> dict[str, str]:
        """`grant_type=client_credentials` and the strategy's `token_post_args` (the audience); no scope: the
        grant decides what the token holds."""
        params = {"grant_type": "client_credentials"}
        if strategy is not None:
            params.update(strategy.token_post_args())
        return params

    async def verify(self, trial: bool = False, app: AppMetadata | None = None) -> VerifyReport:
        """Discovery, a Management token with every permission keystile needs, a read call; optionally a trial."""
        report = VerifyReport()
        await self.verify_discovery(report)
        try:
            token = await self.management_token("verify", force_refresh=True)
        except ProviderError as exc:
            what = f"{exc.code}: {exc.description}" if exc.description else str(exc.code)
            report.failed("management_credentials", f"Auth0 refused the Management API token ({what})")
        else:
            needed = list(MANAGEMENT_PERMISSIONS)
            if self.config.setting("use_developer_managed_scopes", False):
                needed.append(_DEVELOPER_SCOPES_PERMISSION)
            granted = set((token.scope or "").split())
            missing = [p for p in needed if p not in granted]
            if missing:
                report.failed(
                    "management_credentials",
                    f"the Auth0 Management API token lacks {', '.join(missing)}",
                )
            else:
                report.passed("management_credentials", "Management API token issued with every permission needed")
            try:
                await self._call("verify", "GET", "/clients?per_page=1", idempotent=True)
            except ProviderError as exc:
                report.failed(
                    "management_api", f"the Auth0 Management API refused a read ({exc.code}: {exc.description})"
                )
            else:
                report.passed("management_api", "GET /api/v2/clients answered 200")
        if trial:
            await self.verify_trial(report, app)
        else:
            report.skipped("trial_registration", "not requested")
        return report
