"""An in-process Okta org for the `okta` adapter's contract tests (contracts/dcr-providers.md §2.1, §4.2).

Built from Okta's published documents (`oauth-minimal.yaml`, the client-secret operations of
`management-minimal.yaml`) and the DCR reference page: every request and every answer is validated against them
(`OktaValidator`). State: clients (the DCR `Client` objects), their client secrets (`ocs…` objects, at most two),
the access tokens the custom authorization server issued.

Okta's two error families are reproduced where Okta uses them: `{error, error_description}` for DCR validation
(400 `invalid_client_metadata`) and, when `unknown_client="invalid_client"`, for unknown ids on the DCR paths;
`{errorCode, errorSummary, errorLink, errorId, errorCauses}` elsewhere (E0000011 bad API token, E0000007 not
found, E0000001 with causes for the secret rules, E0000047 rate limit).
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from ._common import (
    Clock,
    FakeIdP,
    basic_credentials,
    expect,
    expect_no_body,
    expect_query,
    fake_jwt,
    form_body,
    json_body,
    json_response,
    random_id,
)
from .okta_spec import OktaValidator

ORG = "https://acme.okta.example"
AUTH_SERVER_ID = "aus1keystile0test"
ISSUER = f"{ORG}/oauth2/{AUTH_SERVER_ID}"
API_TOKEN = "00Okta-api-token-for-tests-QWERTY1234567890"
FORBIDDEN_ON_PUT = ("client_secret", "client_id_issued_at", "client_secret_expires_at")
OPENID_SCOPES = {"openid", "profile", "email", "address", "phone", "offline_access"}

_CLIENT = re.compile(r"^/oauth2/v1/clients/([^/]+)$")
_NEW_SECRET = re.compile(r"^/oauth2/v1/clients/([^/]+)/lifecycle/newSecret$")
_SECRETS = re.compile(r"^/api/v1/apps/([^/]+)/credentials/secrets$")
_SECRET = re.compile(r"^/api/v1/apps/([^/]+)/credentials/secrets/([^/]+)$")
_SECRET_LIFECYCLE = re.compile(r"^/api/v1/apps/([^/]+)/credentials/secrets/([^/]+)/lifecycle/(activate|deactivate)$")


def okta_error(code: str, summary: str, causes: list[str] | None = None) -> dict[str, Any]:
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": random_id("oae", 22),
        "errorCauses": [{"errorSummary": c} for c in causes or []],
    }


def register_body(client_name: str, redirect_uri: str | None) -> dict[str, Any]:
    """The exact body §2.1 prescribes for a registration."""
    if redirect_uri is None:
        return {
            "client_name": client_name,
            "application_type": "service",
            "grant_types": ["client_credentials"],
            "response_types": ["token"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
    return {
        "client_name": client_name,
        "application_type": "web",
        "grant_types": ["authorization_code", "client_credentials"],
        "response_types": ["code"],
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "client_secret_basic",
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeOkta(FakeIdP):
    def __init__(
        self,
        validator: OktaValidator,
        *,
        scopes: tuple[str, ...] = ("orders:read", "orders:write"),
        unique_names: bool = True,
        unknown_client: Literal["not_found", "invalid_client"] = "not_found",
        page_size: int = 200,
        clock: Clock = time.time,
    ) -> None:
        super().__init__()
        self.validator = validator
        self.scopes = set(scopes)
        self.unique_names = unique_names
        self.unknown_client = unknown_client
        self.page_size = page_size
        self.clock = clock
        self.api_token_valid = True
        self.clients: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, list[dict[str, Any]]] = {}
        self.issued_tokens: list[dict[str, Any]] = []
        self.token_claim = "client_id"  # custom claim `client_id` = app.clientId (§5); None → only `cid`

    # -- helpers for tests ---------------------------------------------------------------------------------------
    def add_client(self, client_name: str, *, issued_at: float | None = None, redirect_uri: str | None = None) -> dict:
        """A client created out of band (an earlier attempt, another tool); returns it with its secret."""
        return self._create(register_body(client_name, redirect_uri), issued_at=issued_at)

    def active_secrets(self, client_id: str) -> list[str]:
        return [s["client_secret"] for s in self.secrets.get(client_id, []) if s["status"] == "ACTIVE"]

    # -- routing ------------------------------------------------------------------------------------------------
    def check(self, request: httpx.Request) -> None:
        """Every request, also those answered by an injected fault, must be valid for Okta's document.

        One exception: `/.well-known/oauth-authorization-server` at the org root is the generic RFC 8414 fallback of
        `keystile.oidc.discovery` (tried after a 4xx on the OpenID URL); Okta does not serve or document it.
        """
        expect(
            request.url.scheme == "https" and f"https://{request.url.host}" == ORG, f"not the Okta org: {request.url}"
        )
        if request.url.path != "/.well-known/oauth-authorization-server":
            self.validator.check_request(request)

    def route(self, request: httpx.Request) -> httpx.Response:
        response = self._dispatch(request)
        self.validator.check_response(request, response)
        return response

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == f"/oauth2/{AUTH_SERVER_ID}/.well-known/openid-configuration" and method == "GET":
            return self._discovery(request)
        if path == f"/oauth2/{AUTH_SERVER_ID}/v1/token" and method == "POST":
            return self._token(request)
        denied = self._check_api_token(request)
        if denied is not None:
            return denied
        if path == "/oauth2/v1/clients":
            if method == "POST":
                return self._register(request)
            if method == "GET":
                return self._list(request)
        if m := _CLIENT.match(path):
            return self._client(request, m.group(1))
        if (m := _NEW_SECRET.match(path)) and method == "POST":
            return self._new_secret(request, m.group(1))
        if m := _SECRETS.match(path):
            return self._secrets(request, m.group(1))
        if (m := _SECRET_LIFECYCLE.match(path)) and method == "POST":
            return self._secret_lifecycle(request, m.group(1), m.group(2), m.group(3))
        if m := _SECRET.match(path):
            return self._secret(request, m.group(1), m.group(2))
        raise self.unexpected(request)

    def _check_api_token(self, request: httpx.Request) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        expect(header.startswith("SSWS "), f"Authorization scheme is not SSWS: {header.split(' ')[0]!r}")
        expect(request.headers.get("accept") == "application/json", "Accept is not application/json")
        if header != f"SSWS {API_TOKEN}" or not self.api_token_valid:
            return json_response(401, okta_error("E0000011", "Invalid token provided"))
        return None

    def _unknown_client(self, client_id: str) -> httpx.Response:
        if self.unknown_client == "invalid_client":
            return json_response(
                401, {"error": "invalid_client", "error_description": "Invalid value for 'client_id' parameter."}
            )
        return json_response(404, okta_error("E0000007", f"Not found: Resource not found: {client_id} (AppInstance)"))

    # -- discovery and token endpoint ---------------------------------------------------------------------------
    def _discovery(self, request: httpx.Request) -> httpx.Response:
        expect_query(request, {})
        expect("authorization" not in request.headers, "credentials sent to the public discovery endpoint")
        return json_response(
            200,
            {
                "issuer": ISSUER,
                "authorization_endpoint": f"{ISSUER}/v1/authorize",
                "token_endpoint": f"{ISSUER}/v1/token",
                "registration_endpoint": f"{ORG}/oauth2/v1/clients",
                "jwks_uri": f"{ISSUER}/v1/keys",
                "response_types_supported": ["code", "token"],
                "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": sorted(self.scopes | {"openid", "profile"}),
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            },
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        expect_query(request, {})
        creds = basic_credentials(request)
        expect(creds is not None, "the token request does not use HTTP Basic")
        assert creds is not None
        form = form_body(request)
        expect(set(form) <= {"grant_type", "scope"}, f"unexpected token form fields {sorted(form)}")
        expect(form.get("grant_type") == "client_credentials", "grant_type is not client_credentials")
        client_id, secret = creds
        if client_id not in self.clients or secret not in self.active_secrets(client_id):
            return json_response(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "The client secret supplied for a confidential client is invalid.",
                },
            )
        requested = form.get("scope", "").split()
        if not requested:
            return json_response(
                400,
                {
                    "error": "invalid_scope",
                    "error_description": "The authorization server resource does not have any configured default"
                    " scopes, 'scope' must be provided.",
                },
            )
        if set(requested) & OPENID_SCOPES:
            return json_response(
                400,
                {
                    "error": "invalid_scope",
                    "error_description": "Client Credentials requests cannot contain OpenID scopes.",
                },
            )
        if not set(requested) <= self.scopes:
            return json_response(
                400,
                {
                    "error": "invalid_scope",
                    "error_description": "One or more scopes are not configured for the authorization server resource.",
                },
            )
        now = int(self.clock())
        claims: dict[str, Any] = {
            "ver": 1,
            "iss": ISSUER,
            "aud": "api://default",
            "iat": now,
            "exp": now + 3600,
            "cid": client_id,
            "scp": requested,
            "sub": client_id,
        }
        if self.token_claim:
            claims[self.token_claim] = client_id
        self.issued_tokens.append(claims)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3600,
                "access_token": fake_jwt(claims),
                "scope": " ".join(requested),
            },
        )

    # -- DCR ----------------------------------------------------------------------------------------------------
    def _create(self, body: dict[str, Any], *, issued_at: float | None = None) -> dict[str, Any]:
        client_id = random_id("0oa", 17)
        now = int(self.clock() if issued_at is None else issued_at)
        client = {
            "client_id": client_id,
            "client_id_issued_at": now,
            "client_secret_expires_at": 0,
            "client_name": body["client_name"],
            "client_uri": None,
            "logo_uri": None,
            "redirect_uris": list(body.get("redirect_uris", [])),
            "response_types": list(body["response_types"]),
            "grant_types": list(body["grant_types"]),
            "token_endpoint_auth_method": body["token_endpoint_auth_method"],
            "application_type": body["application_type"],
        }
        self.clients[client_id] = client
        secret = self._new_secret_object(client_id)
        self.secrets[client_id] = [secret]
        return {**client, "client_secret": secret["client_secret"]}

    def _new_secret_object(self, client_id: str) -> dict[str, Any]:
        value = random_id(length=40) + "-_" + random_id(length=22)
        now = _iso(self.clock())
        return {
            "id": random_id("ocs", 17),
            "status": "ACTIVE",
            "client_secret": value,
            "secret_hash": hashlib.sha256(value.encode()).hexdigest()[:22],
            "created": now,
            "lastUpdated": now,
        }

    def _register(self, request: httpx.Request) -> httpx.Response:
        expect_query(request, {})
        body = json_body(request)
        expect(isinstance(body, dict) and isinstance(body.get("client_name"), str), "no client_name")
        redirect_uris = body.get("redirect_uris")
        redirect = redirect_uris[0] if isinstance(redirect_uris, list) and len(redirect_uris) == 1 else None
        expected = register_body(body["client_name"], redirect)
        expect(body == expected, f"registration body {body!r} != {expected!r}")
        if self.unique_names and any(c["client_name"] == body["client_name"] for c in self.clients.values()):
            return json_response(
                400,
                {
                    "error": "invalid_client_metadata",
                    "error_description": "client_name: An object with this field already exists in the current"
                    " organization",
                },
            )
        return json_response(201, self._create(body))

    def _list(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        expect(set(params) <= {"limit", "after", "q"}, f"unexpected list parameters {sorted(params)}")
        expect("limit" in params, "list without limit")
        limit = min(int(params["limit"]), self.page_size)
        rows = sorted(self.clients.values(), key=lambda c: c["client_id"])
        if "q" in params:
            rows = [c for c in rows if c["client_name"].startswith(params["q"])]
        if "after" in params:
            rows = [c for c in rows if c["client_id"] > params["after"]]
        page = rows[:limit]
        headers = {"Link": f'<{ORG}/oauth2/v1/clients?limit={params["limit"]}>; rel="self"'}
        if len(rows) > limit:
            nxt = f"{ORG}/oauth2/v1/clients?after={page[-1]['client_id']}&limit={params['limit']}"
            if "q" in params:
                nxt += f"&q={httpx.QueryParams({'q': params['q']})['q']}"
            headers["Link"] += f', <{nxt}>; rel="next"'
        return json_response(200, page, headers)

    def _client(self, request: httpx.Request, client_id: str) -> httpx.Response:
        expect_query(request, {})
        if request.method == "DELETE":
            expect_no_body(request)
            if client_id not in self.clients:
                return self._unknown_client(client_id)
            del self.clients[client_id]
            self.secrets.pop(client_id, None)
            return httpx.Response(204)
        if request.method == "GET":
            expect_no_body(request)
            if client_id not in self.clients:
                return self._unknown_client(client_id)
            return json_response(200, self.clients[client_id])
        if request.method == "PUT":
            body = json_body(request)
            for key in FORBIDDEN_ON_PUT:
                expect(key not in body, f"PUT carries {key}, which Okta refuses")
            if client_id not in self.clients:
                return self._unknown_client(client_id)
            current = self.clients[client_id]
            settings = {k for k in current if k not in ("client_id", "client_id_issued_at", "client_secret_expires_at")}
            missing = sorted(k for k in settings if k not in body)
            expect(not missing, f"PUT is a full replace; missing settings {missing}")
            expect(body.get("client_id", client_id) == client_id, "PUT body names another client_id")
            updated = {**current, **{k: v for k, v in body.items() if k != "client_id"}}
            self.clients[client_id] = updated
            return json_response(200, updated)
        raise self.unexpected(request)

    def _new_secret(self, request: httpx.Request, client_id: str) -> httpx.Response:
        expect_query(request, {})
        expect_no_body(request)
        if client_id not in self.clients:
            return self._unknown_client(client_id)
        secret = self._new_secret_object(client_id)
        self.secrets[client_id] = [secret]  # every earlier secret stops working
        return json_response(200, {**self.clients[client_id], "client_secret": secret["client_secret"]})

    # -- client secrets (management API) ------------------------------------------------------------------------
    def _secrets(self, request: httpx.Request, client_id: str) -> httpx.Response:
        expect_query(request, {})
        if client_id not in self.clients:
            return json_response(
                404, okta_error("E0000007", f"Not found: Resource not found: {client_id} (AppInstance)")
            )
        if request.method == "GET":
            expect_no_body(request)
            return json_response(200, [self._public(s) for s in self.secrets[client_id]])
        if request.method == "POST":
            body = json_body(request)
            expect(body == {}, f"secret creation body {body!r} != {{}} (system-generated secret)")
            if len(self.secrets[client_id]) >= 2:
                return json_response(
                    400,
                    okta_error(
                        "E0000001",
                        "Api validation failed: OAuth2ClientSecretMediated",
                        ["You've reached the maximum number of client secrets per client."],
                    ),
                )
            secret = self._new_secret_object(client_id)
            self.secrets[client_id].append(secret)
            return json_response(201, self._public(secret))
        raise self.unexpected(request)

    def _find_secret(self, client_id: str, secret_id: str) -> dict[str, Any] | None:
        return next((s for s in self.secrets.get(client_id, []) if s["id"] == secret_id), None)

    def _secret(self, request: httpx.Request, client_id: str, secret_id: str) -> httpx.Response:
        expect_query(request, {})
        expect_no_body(request)
        secret = self._find_secret(client_id, secret_id)
        if secret is None:
            return json_response(404, okta_error("E0000007", f"Not found: Resource not found: {secret_id} (Secret)"))
        if request.method == "GET":
            return json_response(200, self._public(secret))
        if request.method == "DELETE":
            if secret["status"] == "ACTIVE":
                return json_response(
                    400,
                    okta_error(
                        "E0000001",
                        "Api validation failed: OAuth2ClientSecretMediated",
                        ["You can't delete an active client secret. Deactivate the secret before deleting it."],
                    ),
                )
            self.secrets[client_id].remove(secret)
            return httpx.Response(204)
        raise self.unexpected(request)

    def _secret_lifecycle(self, request: httpx.Request, client_id: str, secret_id: str, action: str) -> httpx.Response:
        expect_query(request, {})
        expect_no_body(request)
        secret = self._find_secret(client_id, secret_id)
        if secret is None:
            return json_response(404, okta_error("E0000007", f"Not found: Resource not found: {secret_id} (Secret)"))
        if action == "deactivate":
            others = [s for s in self.secrets[client_id] if s is not secret and s["status"] == "ACTIVE"]
            if secret["status"] == "ACTIVE" and not others:
                return json_response(
                    400,
                    okta_error(
                        "E0000001",
                        "Api validation failed: OAuth2ClientSecretMediated",
                        ["You can't deactivate the only active client secret."],
                    ),
                )
            secret["status"] = "INACTIVE"
        else:
            secret["status"] = "ACTIVE"
        secret["lastUpdated"] = _iso(self.clock())
        return json_response(200, self._public(secret))

    @staticmethod
    def _public(secret: dict[str, Any]) -> dict[str, Any]:
        return dict(secret)
