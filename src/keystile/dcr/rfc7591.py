"""`rfc7591`: any RFC 7591 / RFC 7592 server (contracts/dcr-providers.md §2.6; a keystile extension).

Registration (RFC 7591 §3.1) with an initial access token (IAT) in one of three modes: a static
`initial_access_token`, one minted by client credentials (`initial_client_id` + `initial_client_secret`, scope
`initial_client_scope`, default `dcr`) before **each** registration, or none (open registration). Management
(RFC 7592 §2) through `registration_client_uri` with the registration access token (RAT): `PUT` to update (and, with
`rotates_secret_on_put`, to rotate the secret), `DELETE` to deregister. The RAT a `PUT` answers with is stored every
time, since servers may rotate it (RFC 7592 §2.2). Never `GET` the client: Curity rotates on a read.

`CurityProvider` (curity.py) is this class with its data changed and two overrides.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from keystile.dcr.base import BaseProvider, parse_error_body, read_time
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

__all__ = ["Rfc7591Provider"]

# Fields a client MUST NOT send in an RFC 7592 PUT (§2.2), plus Curity's RAT lifetime and the secret itself.
PUT_FORBIDDEN: tuple[str, ...] = (
    "client_secret",
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
    "registration_access_token_expires_in",
)
# Never kept in `metadata` (they go to the vault or to the caller once).
SECRET_RESPONSE_FIELDS: tuple[str, ...] = ("client_secret", "registration_access_token", "registration_client_uri")


class Rfc7591Provider(BaseProvider):
    """RFC 7591/7592 adapter; see the module docstring."""

    provider_type: ClassVar[str] = "rfc7591"
    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("initial_access_token", "initial_client_secret")
    #: `response_types` of a machine client; `None` omits the field (Curity). `[]` is required by RFC 7591 servers:
    #: the default `["code"]` makes them demand `redirect_uris`.
    MACHINE_RESPONSE_TYPES: ClassVar[list[str] | None] = []
    #: a registration endpoint from config is honoured (Curity always uses discovery).
    ENDPOINT_SETTING: ClassVar[str | None] = "registration_endpoint"

    # -- data read from config --------------------------------------------------------------------------------

    @property
    def rotates_on_put(self) -> bool:
        return bool(self.config.setting("rotates_secret_on_put", False))

    @property
    def capabilities(self) -> Capabilities:
        rotates = self.rotates_on_put
        return Capabilities(rotate=rotates, update_rotates_secret=rotates, events=frozenset({"update_application"}))

    @property
    def iat_client(self) -> tuple[str, SecretStr, str] | None:
        """`(client_id, client_secret, scope)` of the client that mints IATs, if that mode is configured."""
        client_id = self.config.setting("initial_client_id")
        secret = self.config.secret("initial_client_secret")
        if not client_id or secret is None:
            return None
        return str(client_id), secret, str(self.config.setting("initial_client_scope", "dcr"))

    # -- bodies -----------------------------------------------------------------------------------------------

    def registration_body(self, app: AppMetadata) -> dict[str, Any]:
        """The RFC 7591 §2 metadata of a new client (§2.6 bodies)."""
        body: dict[str, Any] = {"client_name": client_name(app.name, app.application_id)}
        if app.redirect_uri:
            body["grant_types"] = ["authorization_code", "client_credentials"]
            body["response_types"] = ["code"]
            body["redirect_uris"] = [app.redirect_uri]
        else:
            body["grant_types"] = ["client_credentials"]
            if self.MACHINE_RESPONSE_TYPES is not None:
                body["response_types"] = list(self.MACHINE_RESPONSE_TYPES)
        body["token_endpoint_auth_method"] = "client_secret_basic"
        scopes = registration_scopes(app.scopes)
        if scopes:
            body["scope"] = " ".join(scopes)
        return body

    def update_body(self, ref: ClientRef, app: AppMetadata | None = None) -> dict[str, Any]:
        """The RFC 7592 §2.2 PUT body: the stored metadata with `client_id`, without the forbidden fields; with
        `app`, its name, grants and redirect URIs replace the stored ones."""
        body = {k: v for k, v in ref.metadata.items() if k not in PUT_FORBIDDEN}
        if app is not None:
            fresh = self.registration_body(app)
            for key in ("client_name", "grant_types", "response_types", "redirect_uris"):
                body.pop(key, None)
                if key in fresh:
                    body[key] = fresh[key]
            if "redirect_uris" in ref.metadata and "redirect_uris" not in body:
                body["redirect_uris"] = []
        body["client_id"] = ref.client_id
        return body

    # -- endpoints and tokens ---------------------------------------------------------------------------------

    async def registration_endpoint(self, operation: str) -> str:
        """From config, else discovery.

        Raises:
            ProviderError: `invalid_response` when discovery names none (registration is not enabled).
        """
        if self.ENDPOINT_SETTING is not None:
            configured = self.config.setting(self.ENDPOINT_SETTING)
            if configured:
                return str(configured)
        metadata = await self.discovery(operation)
        endpoint = metadata.registration_endpoint
        if endpoint is None:
            raise self.error(
                operation,
                code="invalid_response",
                description="the discovery document has no registration_endpoint (is dynamic registration enabled?)",
            )
        return endpoint

    async def token_endpoint(self, operation: str) -> str:
        metadata = await self.discovery(operation)
        endpoint = metadata.token_endpoint
        if endpoint is None:
            raise self.error(
                operation, code="invalid_response", description="the discovery document has no token_endpoint"
            )
        return endpoint

    async def mint_token(self, operation: str, scope: str) -> SecretStr:
        """A fresh client-credentials token of the IAT client (never cached: IATs may be single use)."""
        client = self.iat_client
        if client is None:
            self.unsupported(operation, "no initial client is configured to mint tokens")
        client_id, secret, _ = client
        token = await self.client_credentials(
            operation, await self.token_endpoint(operation), client_id, secret, scope=scope or None
        )
        return token.value

    async def initial_access_token(self, operation: str) -> SecretStr | None:
        """The IAT for one registration: static, freshly minted, or `None` (open registration)."""
        static = self.config.secret("initial_access_token")
        if static is not None:
            return static
        client = self.iat_client
        if client is None:
            return None
        return await self.mint_token(operation, client[2])

    @staticmethod
    def _bearer(token: SecretStr | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        return headers

    def _management(self, ref: ClientRef, operation: str) -> tuple[str, SecretStr | None]:
        uri = ref.secret_handles.get("registration_client_uri")
        if uri is None:
            self.unsupported(
                operation, "the server gave no registration_client_uri at registration: keystile cannot manage it"
            )
        return uri.get_secret_value(), ref.secret_handles.get("registration_access_token")

    # -- reading answers --------------------------------------------------------------------------------------

    def _client_state(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, SecretStr], dict[str, Any]]:
        """`(handles, secret_handles, metadata)` from a registration or PUT answer."""
        secret_handles: dict[str, SecretStr] = {}
        for key in ("registration_access_token", "registration_client_uri"):
            value = body.get(key)
            if isinstance(value, str) and value:
                secret_handles[key] = SecretStr(value)
        handles: dict[str, Any] = {}
        lifetime = body.get("registration_access_token_expires_in")
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
            handles["rat_expires_at"] = (datetime.now(UTC) + timedelta(seconds=lifetime)).isoformat()
        metadata = {k: v for k, v in body.items() if k not in SECRET_RESPONSE_FIELDS}
        return handles, secret_handles, metadata

    # -- operations -------------------------------------------------------------------------------------------

    async def register(self, app: AppMetadata) -> IssuedClient:
        """RFC 7591 §3.1 registration. Never repeated once the request may have arrived.

        Raises:
            ProviderError: the IAT could not be had, the server refused, or the answer lacks `client_id` /
                `client_secret` (`invalid_response`: outcome unknown, unless the answer named a management URI and
                RAT with which the half-made client was deleted; `extra["compensation"]` says how that went).
        """
        endpoint = await self.registration_endpoint("register")
        iat = await self.initial_access_token("register")
        response = await self.request(
            "register",
            "POST",
            endpoint,
            idempotent=False,
            headers=self._bearer(iat),
            json_body=self.registration_body(app),
            known=[iat],
        )
        try:
            body = self.json_object(response, "register", required=("client_id", "client_secret"), outcome_unknown=True)
        except ProviderError as exc:
            await self._compensate(app, response, exc)
            raise
        handles, secret_handles, metadata = self._client_state(body)
        return IssuedClient(
            client_id=str(body["client_id"]),
            client_secret=SecretStr(str(body["client_secret"])),
            issued_at=read_time(body, "client_id_issued_at"),
            expires_at=read_time(body, "client_secret_expires_at"),
            handles=handles,
            secret_handles=secret_handles,
            metadata=metadata,
        )

    async def _compensate(self, app: AppMetadata, response: httpx.Response, error: ProviderError) -> None:
        """Delete a client whose registration answer is unusable, when it names how (§1.3: compensate)."""
        try:
            body = json.loads(response.content)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        _, secret_handles, _ = self._client_state(body)
        if set(secret_handles) != {"registration_access_token", "registration_client_uri"}:
            return
        ref = ClientRef(
            client_id=str(body.get("client_id", "")), application_id=app.application_id, secret_handles=secret_handles
        )
        try:
            await self.deregister(ref)
        except ProviderError as exc:
            error.extra["compensation"] = f"the DELETE of the half-made client failed: {exc}"
        else:
            error.extra["compensation"] = "the half-made client was deleted"
            error.outcome_unknown = False

    async def deregister(self, ref: ClientRef) -> None:
        """RFC 7592 §2.3 DELETE. 404 = already gone; 401 = gone when this is a repeated attempt (an earlier one
        in this call got no answer, or `ref.handles["deregister_attempts"]` says an earlier call may have landed),
        unless `ref.handles["rat_uncertain"]` says the stored RAT may be stale (an update's answer carrying a new
        one was lost): then the 401 proves nothing and is handled as on a first attempt, never taken for "gone".

        Raises:
            ProviderError: `unsupported_operation` without `registration_client_uri`; any other failure.
        """
        uri, rat = self._management(ref, "deregister")
        response = await self.request(
            "deregister", "DELETE", uri, idempotent=True, headers=self._bearer(rat), accept={401, 404}, known=[rat]
        )
        if response.status_code != 401:
            return
        repeated = (
            response.extensions.get("keystile_attempt", 1) > 1 or int(ref.handles.get("deregister_attempts", 0)) > 0
        )
        if repeated and not ref.handles.get("rat_uncertain"):
            return
        await self.deregister_rejected(ref, uri, response.status_code, response.content)

    async def deregister_rejected(self, ref: ClientRef, uri: str, status: int, content: bytes) -> None:
        """A first DELETE answered 401: the RAT is not (or no longer) accepted. Raise it as an error."""
        raise self._rat_error("deregister", status, content, ref)

    def _rat_error(self, operation: str, status: int, content: bytes, ref: ClientRef | None = None) -> ProviderError:
        parsed = parse_error_body(status, content)
        description = parsed.description or "the registration access token was rejected"
        if ref is not None and ref.handles.get("rat_uncertain"):
            description += (
                f"; the stored token may be stale (the answer to an earlier update was lost), so keystile cannot "
                f"tell whether client {ref.client_id} still exists: delete it at the identity provider"
            )
        return self.error(operation, status=status, code=parsed.code, description=description)

    async def put_client(
        self, operation: str, ref: ClientRef, body: dict[str, Any], bearer: SecretStr | None = None
    ) -> dict[str, Any]:
        """One RFC 7592 §2.2 PUT (not idempotent: it may rotate the secret and the RAT)."""
        uri, rat = self._management(ref, operation)
        token = bearer if bearer is not None else rat
        response = await self.request(
            operation, "PUT", uri, idempotent=False, headers=self._bearer(token), json_body=body, known=[token]
        )
        return self.json_object(response, operation, required=("client_id",))

    async def put_with_recovery(self, operation: str, ref: ClientRef, body: dict[str, Any]) -> dict[str, Any]:
        """The PUT; a lost answer is not recoverable here (the new RAT is gone): the error says so."""
        try:
            return await self.put_client(operation, ref, body)
        except ProviderError as exc:
            if exc.outcome_unknown:
                exc.extra["needs_attention"] = True
            raise

    def _update_from(self, body: dict[str, Any], *, take_secret: bool) -> ClientUpdate:
        handles, secret_handles, metadata = self._client_state(body)
        secret = body.get("client_secret") if take_secret else None
        return ClientUpdate(
            handles=handles,
            secret_handles=secret_handles,
            metadata=metadata,
            client_secret=SecretStr(secret) if isinstance(secret, str) and secret else None,
            expires_at=read_time(body, "client_secret_expires_at") if take_secret else None,
        )

    def _require_secret(self, operation: str, update: ClientUpdate) -> SecretStr:
        if update.client_secret is None:
            # The PUT landed: the caller must still store the new RAT and metadata (extra["update"]).
            raise self.error(
                operation,
                status=200,
                code="secret_not_rotated",
                description="the PUT answer carries no new client_secret",
                extra={"update": update},
            )
        return update.client_secret

    async def rotate_secret(self, ref: ClientRef, mode: RotateMode = "replace") -> RotatedSecret:
        """`replace` by an RFC 7592 PUT (only when the server rotates on PUT).

        Raises:
            ProviderError: `unsupported_operation` (mode `add`, or the server does not rotate on PUT);
                `secret_not_rotated` when the answer has no `client_secret` (its `extra["update"]` holds the new RAT
                to store); any other failure (`extra["needs_attention"]` when the answer was lost).
        """
        if mode != "replace":
            self.unsupported("rotate_secret", "this IdP keeps one secret per client")
        if not self.capabilities.rotate:
            self.unsupported("rotate_secret", "this server does not rotate secrets on an RFC 7592 PUT")
        body = await self.put_with_recovery("rotate_secret", ref, self.update_body(ref))
        update = self._update_from(body, take_secret=True)
        secret = self._require_secret("rotate_secret", update)
        return RotatedSecret(
            client_secret=secret,
            expires_at=update.expires_at,
            handles=update.handles,
            secret_handles=update.secret_handles,
            metadata=update.metadata,
        )

    async def on_event(self, ref: ClientRef, event: HookEvent) -> ClientUpdate | None:
        """`update_application` only. When the server rotates on PUT, only changed `redirect_uris` are pushed (a
        rotation: the update carries the new secret); otherwise a changed name or `redirect_uris` is pushed and
        a secret in the answer is ignored. Other events: nothing."""
        if event.event_type != "update_application":
            return None
        wanted = [event.app.redirect_uri] if event.app.redirect_uri else []
        stored = ref.metadata.get("redirect_uris") or []
        uris_changed = list(stored) != wanted
        name_changed = ref.metadata.get("client_name") != client_name(event.app.name, event.app.application_id)
        rotates = self.capabilities.update_rotates_secret
        if not uris_changed and (rotates or not name_changed):
            return None
        body = await self.put_with_recovery("on_event", ref, self.update_body(ref, event.app))
        update = self._update_from(body, take_secret=rotates)
        if rotates:
            self._require_secret("on_event", update)
        return update

    # -- verify -----------------------------------------------------------------------------------------------

    async def verify_credentials(self, report: VerifyReport) -> None:
        """The `management_credentials` check: a token is minted by the initial client, where configured."""
        client = self.iat_client
        if client is None:
            mode = "a static initial access token" if self.config.secret("initial_access_token") else "none"
            report.skipped("management_credentials", f"initial access token mode: {mode} (tried by the trial)")
            return
        try:
            await self.mint_token("verify", client[2])
        except ProviderError as exc:
            report.failed("management_credentials", f"no initial access token could be minted: {exc}")
            return
        report.passed("management_credentials", f"a {client[2]!r} token was issued to {client[0]}")

    async def verify(self, trial: bool = False, app: AppMetadata | None = None) -> VerifyReport:
        """Discovery, registration endpoint, IAT minting, and with `trial` a throwaway client (register, RAT and
        URI present, probe, PUT rotation when configured, DELETE). Never raises for IdP answers."""
        report = VerifyReport()
        await self.verify_discovery(report)
        try:
            endpoint = await self.registration_endpoint("verify")
        except ProviderError as exc:
            report.failed("registration_endpoint", f"{self.display_name}: {exc.description}")
        else:
            report.passed("registration_endpoint", f"registration endpoint {endpoint}")
        await self.verify_credentials(report)
        if not trial:
            report.skipped("trial_registration", "not requested")
        elif report.errors:
            report.skipped("trial_registration", "skipped: the checks above failed")
        else:
            await self.verify_trial(report, app)
        return report

    async def trial_steps(self, app: AppMetadata, issued: IssuedClient, ref: ClientRef) -> tuple[ClientRef, list[str]]:
        problems: list[str] = []
        missing = [k for k in ("registration_access_token", "registration_client_uri") if k not in ref.secret_handles]
        if missing:
            problems.append(f"the registration answer lacks {' and '.join(missing)}")
        problems += await self.trial_probe(issued.client_id, issued.client_secret, app)
        if self.capabilities.rotate and not missing:
            try:
                rotated = await self.rotate_secret(ref)
            except ProviderError as exc:
                problems.append(f"the PUT did not rotate the secret: {exc}")
                landed = exc.extra.get("update")
                if isinstance(landed, ClientUpdate):  # the PUT landed: its new RAT deletes the client
                    ref = landed.apply(ref)
            else:
                ref = rotated.apply(ref)
                problems += await self.trial_probe(issued.client_id, rotated.client_secret, app)
        return ref, problems
