"""`azureAd`: Microsoft Entra ID through Microsoft Graph (contracts/dcr-providers.md §2.4).

Config: `issuer` (`https://sts.windows.net/{tenant}/` or `https://login.microsoftonline.com/{tenant}/v2.0`; the
tenant is its first path segment), `initial_client_id`, `initial_client_secret` (write-only); extensions
`graph_base_url` (`https://graph.microsoft.com/v1.0`), `login_base_url` (`https://login.microsoftonline.com`),
`secret_lifetime_days` (365), `max_secrets` (2), `purge_on_delete` (false).

Graph token: `POST {login}/{tenant}/oauth2/v2.0/token`, form `client_id`, `client_secret`,
`scope=https://graph.microsoft.com/.default`, `grant_type=client_credentials`; cached in the injected `TokenCache`
until `expires_in − 60 s`; a 401 from Graph drops it, fetches once and repeats the call once.

Two ids per client: `id` = the application's **object id** (every Graph URL, `handles.object_id`) and `appId` =
the `client_id`. Registration is three steps; if step 2 or 3 fails the application is deleted before raising:

1. `POST {graph}/applications` (`signInAudience` explicit, tags and notes name the application and provider);
2. `POST {graph}/servicePrincipals {"appId"}`: "does not exist" just after step 1 is replication lag, retried with
   backoff within 15 s; on a retry "already exists" (409 `Request_MultipleObjectsWithSameKeyValue`) is success and
   the id is read with `GET {graph}/servicePrincipals(appId='…')`;
3. `POST {graph}/applications/{id}/addPassword`: `secretText` (only here) is the client secret, `keyId` its
   credential id. A new password can be refused at the token endpoint for seconds: `needs_probe` always.

Graph errors are `{"error": {"code", "message", "innerError": {"request-id", "date"}}}`; decisions are taken on
`code`, never on `message`.

Sources: microsoftgraph/microsoft-graph-docs-contrib `api-reference/v1.0/api/{application-post-applications,
serviceprincipal-post-serviceprincipals,application-addpassword,application-removepassword,application-delete,
directory-deleteditems-delete}.md`, `concepts/errors.md`; MicrosoftDocs/entra-docs
`docs/identity-platform/v2-oauth2-client-creds-grant-flow.md`; microsoft-graph-docs-contrib issue 1921.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr

from keystile.dcr.base import AccessToken, BaseProvider, parse_error_body, parse_time
from keystile.dcr.naming import client_name
from keystile.dcr.types import (
    AppMetadata,
    Capabilities,
    ClientRef,
    ClientUpdate,
    HookEvent,
    IdpClient,
    IssuedClient,
    ProbeResult,
    RotatedSecret,
    RotateMode,
    StrategyInfo,
    VerifyReport,
)
from keystile.domain.errors import ProviderError

__all__ = ["GRAPH_PERMISSIONS", "PROBE_SCHEDULE", "AzureAdProvider"]

DEFAULT_GRAPH = "https://graph.microsoft.com/v1.0"
DEFAULT_LOGIN = "https://login.microsoftonline.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_PERMISSIONS = ("Application.ReadWrite.OwnedBy", "Application.ReadWrite.All")
SP_LAG_BUDGET = 15.0  # seconds of replication lag tolerated for the service principal
_SP_LAG_CODES = frozenset({"Request_ResourceNotFound", "Request_BadRequest", "ResourceNotFound"})
_ALREADY_EXISTS = "Request_MultipleObjectsWithSameKeyValue"
PROBE_SCHEDULE = (1.0, 2.0, 4.0, 8.0, 8.0)  # §3.2: backoff between probes, at most 20 s in the request
PROBE_BUDGET = 20.0


def _now() -> datetime:
    return datetime.now(UTC)


def _graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jwt_claims(token: str) -> dict[str, Any]:
    """The unverified payload of a JWT (only to read `roles`); `{}` when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


class AzureAdProvider(BaseProvider):
    """The `azureAd` adapter. Capabilities: rotate, overlap (`max_secrets`), list clients; probe always needed."""

    provider_type: ClassVar[str] = "azureAd"
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        rotate=True,
        overlap=True,
        needs_probe_on_register=True,
        needs_probe_on_rotate=True,
        list_clients=True,
        max_secrets=2,
        events=frozenset({"update_application"}),
    )
    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("initial_client_secret",)
    REQUIRED_SETTINGS: ClassVar[tuple[str, ...]] = ("initial_client_id",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("initial_client_secret",)

    # -- configuration ---------------------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        caps = self.CAPABILITIES
        return Capabilities(
            rotate=caps.rotate,
            overlap=caps.overlap,
            needs_probe_on_register=caps.needs_probe_on_register,
            needs_probe_on_rotate=caps.needs_probe_on_rotate,
            update_rotates_secret=caps.update_rotates_secret,
            list_clients=caps.list_clients,
            events=caps.events,
            max_secrets=int(self.config.setting("max_secrets", caps.max_secrets)),
        )

    @property
    def tenant(self) -> str:
        """The tenant id or domain: the first path segment of the issuer."""
        return urlsplit(self.issuer).path.strip("/").split("/")[0]

    @property
    def graph(self) -> str:
        return str(self.config.setting("graph_base_url", DEFAULT_GRAPH)).rstrip("/")

    @property
    def token_url(self) -> str:
        login = str(self.config.setting("login_base_url", DEFAULT_LOGIN)).rstrip("/")
        return f"{login}/{self.tenant}/oauth2/v2.0/token"

    # -- tokens ----------------------------------------------------------------------------------------------

    async def _form_token(
        self, operation: str, client_id: str, client_secret: SecretStr, scope: str, accept: Collection[int] = ()
    ) -> httpx.Response:
        """A client-credentials request with the credentials in the form, as Entra's v2 token endpoint documents."""
        return await self.request(
            operation,
            "POST",
            self.token_url,
            idempotent=True,
            form={
                "client_id": client_id,
                "client_secret": client_secret.get_secret_value(),
                "scope": scope,
                "grant_type": "client_credentials",
            },
            accept=accept,
            known=[client_secret],
        )

    async def graph_token(self, operation: str, *, force_refresh: bool = False) -> AccessToken:
        """The cached Graph token of the admin app registration.

        Raises:
            ProviderError: the token endpoint refused the admin credentials or did not answer.
        """
        client_id = str(self.config.setting("initial_client_id"))
        secret = self.config.secret("initial_client_secret") or SecretStr("")

        async def fetch() -> AccessToken:
            response = await self._form_token(operation, client_id, secret, GRAPH_SCOPE)
            return self._access_token(operation, response, secret)

        key = hashlib.sha256(
            json.dumps(
                [self.provider_type, self.provider_id, self.token_url, client_id, secret.get_secret_value()]
            ).encode()
        ).hexdigest()
        return await self.tokens.get(key, fetch, force_refresh=force_refresh)

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        accept: Collection[int] = (),
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One Graph call (`path` relative to `graph_base_url`, or absolute); a 401 refetches the token once."""
        url = path if path.startswith("https://") else f"{self.graph}{path}"
        token = await self.graph_token(operation)
        for retry in (False, True):
            response = await self.request(
                operation,
                method,
                url,
                idempotent=idempotent,
                headers={**(headers or {}), "Authorization": f"Bearer {token.value.get_secret_value()}"},
                json_body=json_body,
                accept={*accept} if retry else {*accept, 401},
                known=[token.value],
            )
            if response.status_code != 401 or 401 in accept:
                return response
            token = await self.graph_token(operation, force_refresh=True)
        raise AssertionError("unreachable: the repeated call returns or raises")  # pragma: no cover

    def _app_path(self, ref: ClientRef) -> str:
        """`/applications/{object id}`; without a stored object id, the `appId` alternate key."""
        object_id = ref.handles.get("object_id")
        if isinstance(object_id, str) and object_id:
            return f"/applications/{quote(object_id, safe='')}"
        return f"/applications(appId='{quote(ref.client_id, safe='')}')"

    # -- register --------------------------------------------------------------------------------------------

    def application_body(self, app: AppMetadata) -> dict[str, Any]:
        """Step 1 of §2.4: never `passwordCredentials` (Graph refuses them on create)."""
        body: dict[str, Any] = {
            "displayName": client_name(app.name, app.application_id),
            "signInAudience": "AzureADMyOrg",
            "notes": f"Managed by keystile for application {app.application_id}",
            "tags": ["keystile", f"keystile:app:{app.application_id}", f"keystile:provider:{self.provider_id}"],
        }
        if app.redirect_uri:
            body["web"] = {"redirectUris": [app.redirect_uri]}
        return body

    async def register(self, app: AppMetadata) -> IssuedClient:
        """Application, service principal, password (§2.4); the application is deleted if step 2 or 3 fails.

        Raises:
            ProviderError: what Graph answered (`outcome_unknown` when the clean-up delete failed too).
        """
        response = await self._call(
            "register", "POST", "/applications", idempotent=False, json_body=self.application_body(app)
        )
        created = self.json_object(response, "register", required=("id", "appId"), outcome_unknown=True)
        object_id, app_id = str(created["id"]), str(created["appId"])
        try:
            sp_id = await self._service_principal(app_id)
            password = await self._add_password("register", f"/applications/{object_id}")
        except ProviderError as exc:
            try:
                await self._call("register", "DELETE", f"/applications/{object_id}", idempotent=True, accept={404})
            except ProviderError:
                exc.outcome_unknown = True
                exc.extra = {**exc.extra, "client_id": app_id}
            raise
        secret, key_id, expires_at = password
        try:
            issued_at = parse_time(created.get("createdDateTime"))
        except ValueError:
            issued_at = None
        return IssuedClient(
            client_id=app_id,
            client_secret=secret,
            issued_at=issued_at,
            expires_at=expires_at,
            credential_id=key_id,
            handles={"object_id": object_id, "service_principal_id": sp_id},
            metadata={k: v for k, v in created.items() if k != "passwordCredentials"},
            needs_probe=True,
        )

    async def _service_principal(self, app_id: str) -> str:
        """Step 2, riding out replication lag; "already exists" is success (only an earlier attempt of this call,
        retried here or inside `request`, can have made a service principal for the brand-new application)."""
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            response = await self._call(
                "register",
                "POST",
                "/servicePrincipals",
                idempotent=True,
                json_body={"appId": app_id},
                accept={400, 404, 409},
            )
            if 200 <= response.status_code < 300:
                return str(self.json_object(response, "register", required=("id",))["id"])
            code = parse_error_body(response.status_code, response.content).code
            if response.status_code == 409 or code == _ALREADY_EXISTS:  # an earlier attempt landed
                found = await self._call(
                    "register", "GET", f"/servicePrincipals(appId='{quote(app_id, safe='')}')", idempotent=True
                )
                return str(self.json_object(found, "register", required=("id",))["id"])
            delay = min(8.0, 0.5 * 2**attempt)
            if code not in _SP_LAG_CODES or waited + delay > SP_LAG_BUDGET:
                self._fail("register", response)
            await self._sleep(delay)
            waited += delay

    def _fail(self, operation: str, response: httpx.Response) -> None:
        err = self.status_error(operation, response, idempotent=True)
        raise err from httpx.HTTPStatusError(
            f"{response.request.method} answered {response.status_code}", request=response.request, response=response
        )

    async def _add_password(self, operation: str, app_path: str) -> tuple[SecretStr, str, Any]:
        """Step 3: `secretText` is the only source of the secret."""
        now = _now()
        days = int(self.config.setting("secret_lifetime_days", 365))
        body = {
            "passwordCredential": {
                "displayName": f"keystile {now.date().isoformat()}",
                "endDateTime": _graph_time(now + timedelta(days=days)),
            }
        }
        response = await self._call(operation, "POST", f"{app_path}/addPassword", idempotent=False, json_body=body)
        answer = self.json_object(response, operation, required=("keyId", "secretText"))
        secret = SecretStr(str(answer["secretText"]))
        try:
            expires_at = parse_time(answer.get("endDateTime"))
        except ValueError:
            expires_at = None
        return secret, str(answer["keyId"]), expires_at

    # -- secrets ---------------------------------------------------------------------------------------------

    async def rotate_secret(self, ref: ClientRef, mode: RotateMode = "replace") -> RotatedSecret:
        """A new password (`addPassword`); the new secret always needs a probe.

        `replace` first reads the application's current `keyId`s (`GET …?$select=passwordCredentials`) and returns
        them as `replaced_credential_ids`: the caller revokes them once the new secret is `active` (§3.2), so no
        moment passes without a working secret.
        """
        path = self._app_path(ref)
        replaced: list[str] = []
        if mode == "replace":
            query = httpx.QueryParams({"$select": "passwordCredentials"})
            current = await self._call("rotate_secret", "GET", f"{path}?{query}", idempotent=True)
            credentials = self.json_object(current, "rotate_secret").get("passwordCredentials")
            if isinstance(credentials, list):
                replaced = [str(c["keyId"]) for c in credentials if isinstance(c, dict) and c.get("keyId")]
        secret, key_id, expires_at = await self._add_password("rotate_secret", path)
        return RotatedSecret(
            client_secret=secret,
            credential_id=key_id,
            expires_at=expires_at,
            replaced_credential_ids=replaced,
            needs_probe=True,
        )

    async def revoke_secret(self, ref: ClientRef, credential_id: str) -> None:
        """`removePassword {"keyId"}`; 404 = already gone."""
        await self._call(
            "revoke_secret",
            "POST",
            f"{self._app_path(ref)}/removePassword",
            idempotent=True,
            json_body={"keyId": credential_id},
            accept={404},
        )

    # -- events and delete -----------------------------------------------------------------------------------

    async def on_event(self, ref: ClientRef, event: HookEvent) -> ClientUpdate | None:
        """`update_application`: PATCH `displayName` and `web.redirectUris` (204, nothing to store)."""
        if event.event_type != "update_application":
            return None
        app = event.app
        body = {
            "displayName": client_name(app.name, app.application_id),
            "web": {"redirectUris": [app.redirect_uri] if app.redirect_uri else []},
        }
        await self._call("on_event", "PATCH", self._app_path(ref), idempotent=True, json_body=body)
        return None

    async def deregister(self, ref: ClientRef) -> None:
        """Delete the service principal and the application (soft delete: restorable for 30 days, cannot sign
        in); with `purge_on_delete` also the deleted item. 404 on any of them = already gone."""
        sp_id = ref.handles.get("service_principal_id")
        if isinstance(sp_id, str) and sp_id:
            await self._call("deregister", "DELETE", f"/servicePrincipals/{sp_id}", idempotent=True, accept={404})
        path = self._app_path(ref)
        await self._call("deregister", "DELETE", path, idempotent=True, accept={404})
        object_id = ref.handles.get("object_id")
        if self.config.setting("purge_on_delete", False) and isinstance(object_id, str) and object_id:
            await self._call(
                "deregister", "DELETE", f"/directory/deletedItems/{object_id}", idempotent=True, accept={404}
            )

    # -- list ------------------------------------------------------------------------------------------------

    async def list_clients(self) -> AsyncIterator[IdpClient]:
        """Applications tagged `keystile:provider:<id>`, following `@odata.nextLink` (same origin only)."""
        query = httpx.QueryParams(
            {
                "$filter": f"tags/any(t:t eq 'keystile:provider:{self.provider_id}')",
                "$select": "id,appId,displayName,tags,createdDateTime",
                "$count": "true",
            }
        )
        url: str | None = f"{self.graph}/applications?{query}"
        graph_origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.graph))
        while url is not None:
            response = await self._call(
                "list_clients", "GET", url, idempotent=True, headers={"ConsistencyLevel": "eventual"}
            )
            body = self.json_object(response, "list_clients")
            rows = body.get("value")
            if not isinstance(rows, list):
                raise self.error("list_clients", code="invalid_response", description="the answer has no value array")
            for row in rows:
                if not isinstance(row, dict) or not isinstance(row.get("appId"), str):
                    continue
                raw_tags = row.get("tags")
                tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
                application_id = next(
                    (
                        t.removeprefix("keystile:app:")
                        for t in tags
                        if isinstance(t, str) and t.startswith("keystile:app:")
                    ),
                    None,
                )
                try:
                    created_at = parse_time(row.get("createdDateTime"))
                except ValueError:
                    created_at = None
                yield IdpClient(
                    client_id=row["appId"],
                    name=str(row.get("displayName", "")),
                    application_id=application_id,
                    created_at=created_at,
                )
            next_link = body.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) else None
            if url is not None and "{0.scheme}://{0.netloc}".format(urlsplit(url)) != graph_origin:
                raise self.error(
                    "list_clients", code="invalid_response", description=f"a next link leaves Graph: {url}"
                )

    # -- probe and verify ------------------------------------------------------------------------------------

    @staticmethod
    def probe_scope(strategy: StrategyInfo | None) -> str:
        """The strategy scope ending in `/.default`, else Graph's."""
        for scope in strategy.scopes if strategy is not None else ():
            if scope.endswith("/.default"):
                return scope
        return GRAPH_SCOPE

    async def probe(
        self, client_id: str, client_secret: SecretStr, strategy: StrategyInfo | None = None
    ) -> ProbeResult:
        """A client-credentials request with the new credentials (form post, §2.4).

        Returns:
            `OK`, `REJECTED` (401, `invalid_client`, `unauthorized_client`: e.g. not yet propagated) or `DENIED`.

        Raises:
            ProviderError: no usable answer.
        """
        response = await self._form_token(
            "probe", client_id, client_secret, self.probe_scope(strategy), accept={400, 401, 403}
        )
        if response.status_code == 200:
            self._access_token("probe", response, client_secret)
            return ProbeResult.OK
        code = parse_error_body(response.status_code, response.content).code
        if response.status_code == 401 or code in ("invalid_client", "unauthorized_client"):
            return ProbeResult.REJECTED
        return ProbeResult.DENIED

    async def probe_until_active(
        self,
        client_id: str,
        client_secret: SecretStr,
        strategy: StrategyInfo | None = None,
        schedule: tuple[float, ...] = PROBE_SCHEDULE,
        budget: float = PROBE_BUDGET,
    ) -> ProbeResult:
        """Probe, then again after each delay of `schedule` while the secret is `REJECTED` and the waits stay
        within `budget` seconds (§3.2: 1, 2, 4, 8, 8 s, at most 20 s). `OK` → active; anything else → pending."""
        result = await self.probe(client_id, client_secret, strategy)
        waited = 0.0
        for delay in schedule:
            if result is not ProbeResult.REJECTED or waited + delay > budget:
                break
            await self._sleep(delay)
            waited += delay
            result = await self.probe(client_id, client_secret, strategy)
        return result

    async def verify(self, trial: bool = False, app: AppMetadata | None = None) -> VerifyReport:
        """Discovery, a Graph token whose `roles` hold `Application.ReadWrite.OwnedBy` (or `.All`); optionally a
        trial: application, service principal, secret, probe with backoff, delete (and purge if set)."""
        report = VerifyReport()
        await self.verify_discovery(report)
        try:
            token = await self.graph_token("verify", force_refresh=True)
        except ProviderError as exc:
            what = f"{exc.code}: {exc.description}" if exc.description else str(exc.code)
            report.failed("management_credentials", f"Entra ID refused keystile's client credentials ({what})")
        else:
            roles = _jwt_claims(token.value.get_secret_value()).get("roles")
            roles = [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
            if any(p in roles for p in GRAPH_PERMISSIONS):
                report.passed("management_credentials", "Graph token issued with Application.ReadWrite permission")
            else:
                report.failed(
                    "management_credentials",
                    "the Graph token lacks the application permission Application.ReadWrite.OwnedBy"
                    f" (roles: {', '.join(roles) or 'none'}); grant it and give admin consent",
                )
        if trial:
            await self._verify_trial(report, app)
        else:
            report.skipped("trial_registration", "not requested")
        return report

    async def _verify_trial(self, report: VerifyReport, app: AppMetadata | None) -> None:
        app = app or self.trial_app()
        try:
            issued = await self.register(app)
        except ProviderError as exc:
            report.failed("trial_registration", f"trial registration failed: {exc}")
            return
        problems: list[str] = []
        try:
            outcome = await self.probe_until_active(issued.client_id, issued.client_secret, app.strategy)
        except ProviderError as exc:
            problems.append(f"the new client's token request failed: {exc}")
        else:
            if outcome is not ProbeResult.OK:
                problems.append(f"the new client's credentials were still {outcome.value} after the probe budget")
        ref = issued.as_ref(app.application_id, app.created_at)
        try:
            await self.deregister(ref)
        except ProviderError as exc:
            report.cleanup, report.cleanup_landed = ref, exc.may_have_landed
            problems.append(f"the trial client {issued.client_id} could not be deleted: {exc}")
        if problems:
            report.failed("trial_registration", "; ".join(problems))
        else:
            report.passed(
                "trial_registration", f"application {issued.client_id} registered, its secret worked, and deleted"
            )
