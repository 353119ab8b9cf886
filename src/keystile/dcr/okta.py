"""`okta`: Okta's Dynamic Client Registration API with an API token (contracts/dcr-providers.md §2.1).

Config: `issuer` = a **custom** authorization server `https://{org}/oauth2/{authServerId}`; `dcr_config.dcr_token`
(write-only). `{org}` is the origin of the issuer. Every call sends `Authorization: SSWS <dcr_token>` and
`Accept: application/json` (httpx adds `Content-Type: application/json` with a body).

| operation | request |
|---|---|
| register | `POST {org}/oauth2/v1/clients` (service or web body, §2.1) |
| deregister | `DELETE {org}/oauth2/v1/clients/{client_id}`; 404 `E0000007` or 401 `invalid_client` = gone |
| rotate `replace` | `POST {org}/oauth2/v1/clients/{client_id}/lifecycle/newSecret` (the old secret dies) |
| rotate `add` | `GET {org}/api/v1/apps/{client_id}/credentials/secrets`, then `POST` there with `{}` (at most two) |
| revoke | `POST …/credentials/secrets/{id}/lifecycle/deactivate`, then `DELETE …/credentials/secrets/{id}` |
| `update_application` | `PUT {org}/oauth2/v1/clients/{client_id}` (full replace, without read-only fields) |
| list | `GET {org}/oauth2/v1/clients?limit=200`, then each `Link: <…>; rel="next"` |
| probe | `POST {issuer}/v1/token`, form `grant_type=client_credentials&scope=…`, Basic |

Okta answers in two error families, both read by the shared parser: `{error, error_description}` on the DCR paths
(400 `invalid_client_metadata`, 401 `invalid_client` for unknown ids) and `{errorCode, errorSummary, errorCauses}`
elsewhere (401 `E0000011` bad token, 404 `E0000007`, 400 `E0000001` with causes, 429 `E0000047`).

Sources: okta/okta-management-openapi-spec `dist/current/oauth-minimal.yaml` (operations `createClient`,
`listClients`, `replaceClient`, `deleteClient`, `generateNewClientSecret`) and `management-minimal.yaml`
(`listOAuth2ClientSecrets`, `createOAuth2ClientSecret`, `deactivateOAuth2ClientSecret`, `deleteOAuth2ClientSecret`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr

from keystile.dcr.base import BaseProvider, parse_error_body, parse_time
from keystile.dcr.naming import client_name, registration_scopes, tag_of
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
    VerifyReport,
)
from keystile.domain.errors import ProviderError

__all__ = ["OktaProvider", "okta_client_body"]

logger = logging.getLogger("keystile.dcr.okta")

# Read-only in Okta's `Client` schema: never sent on PUT (`client_id` included: the document marks it readOnly).
_READ_ONLY = ("client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at")
_CUSTOM_AS_PATH = re.compile(r"^/oauth2/[^/]+$")
_DUPLICATE_NAME_WINDOW = timedelta(seconds=60)
_PAGE_LIMIT = 200


def okta_client_body(name: str, redirect_uri: str | None) -> dict[str, Any]:
    """The registration body of §2.1: a `service` client, or a `web` one when the app has a redirect URI."""
    if redirect_uri is None:
        return {
            "client_name": name,
            "application_type": "service",
            "grant_types": ["client_credentials"],
            "response_types": ["token"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
    return {
        "client_name": name,
        "application_type": "web",
        "grant_types": ["authorization_code", "client_credentials"],
        "response_types": ["code"],
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "client_secret_basic",
    }


def _without_secret(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "client_secret"}


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified (only to report which claims a token carries), else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class OktaProvider(BaseProvider):
    """The `okta` adapter. Capabilities: rotate, overlap (two live secrets), list clients."""

    provider_type: ClassVar[str] = "okta"
    CAPABILITIES: ClassVar[Capabilities] = Capabilities(
        rotate=True, overlap=True, list_clients=True, max_secrets=2, events=frozenset({"update_application"})
    )
    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("dcr_token",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("dcr_token",)

    # -- wire helpers ----------------------------------------------------------------------------------------

    @property
    def _headers(self) -> dict[str, str]:
        token = self.config.secret("dcr_token")
        value = token.get_secret_value() if token is not None else ""
        return {"Authorization": f"SSWS {value}", "Accept": "application/json"}

    def _clients_url(self, client_id: str | None = None) -> str:
        base = f"{self.origin}/oauth2/v1/clients"
        return base if client_id is None else f"{base}/{quote(client_id, safe='')}"

    def _secrets_url(self, client_id: str, secret_id: str | None = None) -> str:
        base = f"{self.origin}/api/v1/apps/{quote(client_id, safe='')}/credentials/secrets"
        return base if secret_id is None else f"{base}/{quote(secret_id, safe='')}"

    async def _call(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        accept: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        return await self.request(
            operation, method, url, idempotent=idempotent, headers=self._headers, json_body=json_body, accept=accept
        )

    def _refuse(self, operation: str, response: httpx.Response, *, idempotent: bool, note: str = "") -> NoReturn:
        """Raise the classified error for an answer taken with `accept=` that is a failure after all."""
        err = self.status_error(operation, response, idempotent=idempotent)
        if note:
            err = self.error(
                operation,
                status=err.status,
                code=err.code or f"http_{response.status_code}",
                description=f"{err.description} ({note})",
                idp_request_id=err.idp_request_id,
            )
        raise err from httpx.HTTPStatusError(
            f"{response.request.method} answered {response.status_code}", request=response.request, response=response
        )

    # -- register --------------------------------------------------------------------------------------------

    async def register(self, app: AppMetadata) -> IssuedClient:
        """Register a client (`POST /oauth2/v1/clients`), recovering once from a duplicate name (§2.1).

        Raises:
            ProviderError: the IdP refused (e.g. 400 `invalid_client_metadata`) or gave no usable answer.
        """
        name = client_name(app.name, app.application_id)
        body = okta_client_body(name, app.redirect_uri)
        response = await self._call(
            "register", "POST", self._clients_url(), idempotent=False, json_body=body, accept=frozenset({400})
        )
        if response.status_code == 400:
            if not self._is_duplicate_name(response):
                self._refuse("register", response, idempotent=False)
            await self._clear_earlier_attempt(app, name, response)
            response = await self._call("register", "POST", self._clients_url(), idempotent=False, json_body=body)
        created = self.json_object(response, "register", required=("client_id", "client_secret"), outcome_unknown=True)
        secret = SecretStr(str(created["client_secret"]))
        try:
            issued_at = parse_time(created.get("client_id_issued_at"))
            expires_at = parse_time(created.get("client_secret_expires_at"))
        except ValueError as exc:
            raise self.error(
                "register",
                status=response.status_code,
                code="invalid_response",
                description="unreadable client_id_issued_at or client_secret_expires_at",
                outcome_unknown=True,
                known=[secret],
                extra={"client_id": str(created["client_id"])},
            ) from exc
        client_id = str(created["client_id"])
        return IssuedClient(
            client_id=client_id,
            client_secret=secret,
            issued_at=issued_at,
            expires_at=expires_at,
            credential_id=await self._sole_secret_id("register", client_id),
            metadata=_without_secret(created),
        )

    @staticmethod
    def _is_duplicate_name(response: httpx.Response) -> bool:
        parsed = parse_error_body(response.status_code, response.content)
        text = parsed.description.lower()
        return parsed.code == "invalid_client_metadata" and "client_name" in text and "already exists" in text

    async def _clear_earlier_attempt(self, app: AppMetadata, name: str, refusal: httpx.Response) -> None:
        """Delete the client an earlier attempt for this application left behind, or raise the refusal.

        The name carries the application's tag, so an exact match was made for this application; it is deleted only
        when it is not older than the application (`created_at` − 60 s): an older one is someone else's.
        """
        url = f"{self._clients_url()}?{httpx.QueryParams({'q': name, 'limit': str(_PAGE_LIMIT)})}"
        found = await self._call("register", "GET", url, idempotent=True)
        rows = self.json_list(found, "register")
        match = next((row for row in rows if isinstance(row, dict) and row.get("client_name") == name), None)
        if match is None or not isinstance(match.get("client_id"), str):
            self._refuse("register", refusal, idempotent=False)
        try:
            issued_at = parse_time(match.get("client_id_issued_at"))
        except ValueError:
            issued_at = None
        if app.created_at is None or issued_at is None or issued_at < app.created_at - _DUPLICATE_NAME_WINDOW:
            self._refuse(
                "register",
                refusal,
                idempotent=False,
                note=f"client {match['client_id']} already has this name and predates the application;"
                " keystile leaves it alone",
            )
        await self._delete_client("register", match["client_id"])

    # -- deregister ------------------------------------------------------------------------------------------

    async def _delete_client(self, operation: str, client_id: str) -> None:
        response = await self._call(
            operation, "DELETE", self._clients_url(client_id), idempotent=True, accept=frozenset({401, 404})
        )
        if response.status_code == 401 and parse_error_body(401, response.content).code != "invalid_client":
            self._refuse(operation, response, idempotent=True)  # E0000011: the API token, not the id

    async def deregister(self, ref: ClientRef) -> None:
        """Delete the client; 404 `E0000007` and 401 `invalid_client` mean it is already gone.

        Raises:
            ProviderError: any other refusal (401 `E0000011` = the API token was rejected) or no answer.
        """
        await self._delete_client("deregister", ref.client_id)

    # -- secrets ---------------------------------------------------------------------------------------------

    async def _sole_secret_id(self, operation: str, client_id: str) -> str | None:
        """The `ocs…` id of a client's only active secret (the DCR answers carry none), so that the credential can
        be revoked later by id; `None` when it cannot be read.

        Best effort by design: the secret is already issued and must reach the caller, so a failed read is logged
        (without secrets) and the credential stays without an id instead of failing the operation.
        """
        try:
            listed = await self._call(operation, "GET", self._secrets_url(client_id), idempotent=True)
            rows = self.json_list(listed, operation)
        except ProviderError as exc:
            logger.warning("okta %s: the id of the new client secret could not be read: %s", operation, exc)
            return None
        active = [str(r["id"]) for r in rows if isinstance(r, dict) and r.get("status") == "ACTIVE" and r.get("id")]
        return active[0] if len(active) == 1 else None

    async def rotate_secret(self, ref: ClientRef, mode: RotateMode = "replace") -> RotatedSecret:
        """`replace`: `newSecret` (the old secret stops at once). `add`: a second live secret (Okta allows two).

        Raises:
            ProviderError: e.g. 400 `E0000001` "You've reached the maximum number of client secrets per client."
        """
        if mode == "replace":
            response = await self._call(
                "rotate_secret", "POST", f"{self._clients_url(ref.client_id)}/lifecycle/newSecret", idempotent=False
            )
            body = self.json_object(response, "rotate_secret", required=("client_secret",))
            return RotatedSecret(
                client_secret=SecretStr(str(body["client_secret"])),
                credential_id=await self._sole_secret_id("rotate_secret", ref.client_id),
                metadata=_without_secret(body),
                needs_probe=False,
            )
        listed = await self._call("rotate_secret", "GET", self._secrets_url(ref.client_id), idempotent=True)
        previous = [str(s["id"]) for s in self.json_list(listed, "rotate_secret") if isinstance(s, dict) and "id" in s]
        response = await self._call(
            "rotate_secret", "POST", self._secrets_url(ref.client_id), idempotent=False, json_body={}
        )
        body = self.json_object(response, "rotate_secret", required=("id", "client_secret"))
        return RotatedSecret(
            client_secret=SecretStr(str(body["client_secret"])),
            credential_id=str(body["id"]),
            handles={"credential_ids": [*previous, str(body["id"])]},
            needs_probe=False,
        )

    async def revoke_secret(self, ref: ClientRef, credential_id: str) -> None:
        """Deactivate, then delete one client secret (`ocs…`); a 404 on either means it is already gone.

        Raises:
            ProviderError: e.g. 400 `E0000001` "You can't deactivate the only active client secret."
        """
        url = self._secrets_url(ref.client_id, credential_id)
        response = await self._call(
            "revoke_secret", "POST", f"{url}/lifecycle/deactivate", idempotent=True, accept=frozenset({404})
        )
        if response.status_code == 404:
            return
        await self._call("revoke_secret", "DELETE", url, idempotent=True, accept=frozenset({404}))

    # -- events ----------------------------------------------------------------------------------------------

    async def on_event(self, ref: ClientRef, event: HookEvent) -> ClientUpdate | None:
        """`update_application`: PUT the stored metadata with the new `client_name` and `redirect_uris`.

        Without stored metadata the client is read first (`GET /oauth2/v1/clients/{client_id}`).
        Okta's PUT is a full replace that refuses the read-only fields, so they are left out; a `client_secret` in
        the answer is ignored. Other events are not pushed to Okta.
        """
        if event.event_type != "update_application":
            return None
        stored = ref.metadata
        if not stored:  # a full replace needs every setting: read them when nothing was stored
            current = await self._call("on_event", "GET", self._clients_url(ref.client_id), idempotent=True)
            stored = self.json_object(current, "on_event")
        body = {k: v for k, v in stored.items() if k not in _READ_ONLY}
        body["client_name"] = client_name(event.app.name, event.app.application_id)
        body["redirect_uris"] = [event.app.redirect_uri] if event.app.redirect_uri else []
        response = await self._call(
            "on_event", "PUT", self._clients_url(ref.client_id), idempotent=True, json_body=body
        )
        return ClientUpdate(metadata=_without_secret(self.json_object(response, "on_event")))

    # -- list ------------------------------------------------------------------------------------------------

    async def list_clients(self) -> AsyncIterator[IdpClient]:
        """Every client whose name carries keystile's tag, following `Link: <…>; rel="next"`.

        `application_id` is the tag's `h12` (the last 12 hex digits of the application id). A next link on another
        origin is refused (the API token goes only to the org).
        """
        url: str | None = f"{self._clients_url()}?limit={_PAGE_LIMIT}"
        while url is not None:
            response = await self._call("list_clients", "GET", url, idempotent=True)
            for row in self.json_list(response, "list_clients"):
                if not isinstance(row, dict):
                    continue
                name = row.get("client_name")
                h12 = tag_of(name if isinstance(name, str) else None)
                if h12 is None or not isinstance(row.get("client_id"), str):
                    continue
                try:
                    created_at = parse_time(row.get("client_id_issued_at"))
                except ValueError:
                    created_at = None
                yield IdpClient(client_id=row["client_id"], name=str(name), application_id=h12, created_at=created_at)
            url = response.links.get("next", {}).get("url")
            if url is not None and f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" != self.origin:
                raise self.error(
                    "list_clients", code="invalid_response", description=f"a next link leaves the org: {url}"
                )

    # -- probe and verify ------------------------------------------------------------------------------------

    async def probe_token_url(self) -> str:
        """`{issuer}/v1/token` of the custom authorization server."""
        return f"{self.issuer.rstrip('/')}/v1/token"

    async def verify(self, trial: bool = False, app: AppMetadata | None = None) -> VerifyReport:
        """Discovery and issuer, a custom authorization server, the API token accepted; optionally a trial.

        Never raises for IdP answers: every problem is a failed check with a sentence naming Okta and its code.
        """
        report = VerifyReport()
        discovered = await self.verify_discovery(report)
        path = urlsplit(self.issuer).path.rstrip("/")
        if _CUSTOM_AS_PATH.match(path):
            server = path.rsplit("/", 1)[-1]
            if discovered is None:  # the path has the right shape, but nothing showed the server exists
                report.skipped(
                    "authorization_server",
                    f"the issuer names custom authorization server {server}, but its metadata could not be read"
                    " (see discovery)",
                )
            else:
                report.passed("authorization_server", f"custom authorization server {server}")
        else:
            report.failed(
                "authorization_server",
                f"the issuer {self.issuer} is not an Okta custom authorization server (https://{{org}}/oauth2/{{id}})",
            )
        try:
            await self._call("verify", "GET", f"{self._clients_url()}?limit=1", idempotent=True)
        except ProviderError as exc:
            what = f"{exc.code}: {exc.description}" if exc.description else str(exc.code)
            if exc.status == 401:
                report.failed("management_credentials", f"the Okta API token was rejected ({what})")
            else:
                report.failed("management_credentials", f"the Okta API token could not be checked ({what})")
        else:
            report.passed("management_credentials", "the Okta API token was accepted (GET /oauth2/v1/clients)")
        if trial:
            await self._verify_trial(report, app)
        else:
            report.skipped("trial_registration", "not requested")
        return report

    async def _verify_trial(self, report: VerifyReport, app: AppMetadata | None) -> None:
        """Register, get a token with the new client (the claim naming it must be there), deregister."""
        app = app or self.trial_app()
        try:
            issued = await self.register(app)
        except ProviderError as exc:
            report.failed("trial_registration", f"trial registration failed: {exc}")
            return
        problems: list[str] = []
        scopes = registration_scopes(app.strategy.scopes)
        try:
            token = await self.client_credentials(
                "verify",
                await self.probe_token_url(),
                issued.client_id,
                issued.client_secret,
                scope=" ".join(scopes) or None,
            )
        except ProviderError as exc:
            problems.append(f"the new client's token request failed: {exc}")
        else:
            claims = _jwt_claims(token.value.get_secret_value()) or {}
            if claims.get("client_id") != issued.client_id:
                report.warning(
                    "token_claims",
                    "the access token has no client_id claim (add one with value app.clientId, or use cid as"
                    " credential_claim)",
                )
            else:
                report.passed("token_claims", "the access token carries client_id")
        ref = issued.as_ref(app.application_id, app.created_at)
        try:
            await self.deregister(ref)
        except ProviderError as exc:
            report.cleanup, report.cleanup_landed = ref, exc.may_have_landed
            problems.append(f"the trial client {issued.client_id} could not be deleted: {exc}")
        if problems:
            report.failed("trial_registration", "; ".join(problems))
        else:
            report.passed("trial_registration", f"client {issued.client_id} registered, got a token, and deleted")
