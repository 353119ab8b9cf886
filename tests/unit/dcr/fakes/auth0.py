"""An in-process Auth0 tenant for the `auth0` adapter's contract tests (contracts/dcr-providers.md §2.2, §4.2).

Built from node-auth0's generated request types and status mapping and Auth0's docs: the Management API (`/api/v2`
clients and client grants) behind Bearer tokens from `POST /oauth/token` (JSON body), and the same token endpoint
for applications (form body, HTTP Basic, `audience`). State: Management tokens with their expiry on the fake clock,
clients with their one live secret, client grants, resource servers (APIs).

Quirks reproduced: Management errors `{statusCode, error, message, errorCode}`; token endpoint errors
`{error, error_description}`; 409 on a second grant for the same client and audience; a rotated secret refused at
the token endpoint for the next `rotation_delay` attempts (the old one dies at once); deleting a client also
removes its grants (as Auth0 does).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from ._common import (
    FakeIdP,
    basic_credentials,
    bearer,
    expect,
    expect_no_body,
    expect_query,
    fake_jwt,
    form_body,
    json_body,
    json_response,
    random_id,
)

TENANT = "https://acme.eu.auth0.example"
ISSUER = f"{TENANT}/"
MGMT_AUDIENCE = f"{TENANT}/api/v2/"
ADMIN_CLIENT_ID = "AdminM2MclientIdForKeystile00001"
ADMIN_CLIENT_SECRET = "admin-m2m-secret-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0Ed"
API_AUDIENCE = "https://api.orders.example"
ALL_PERMISSIONS = (
    "read:clients create:clients update:clients delete:clients update:client_keys read:client_grants"
    " create:client_grants update:client_grants delete:client_grants read:resource_servers"
)
CLIENT_KEYS = {
    "name",
    "description",
    "app_type",
    "grant_types",
    "token_endpoint_auth_method",
    "oidc_conformant",
    "jwt_configuration",
    "client_metadata",
}
METADATA_KEYS = {"keystile_application_id", "keystile_developer_id", "keystile_portal_id", "keystile_provider_id"}

_CLIENT = re.compile(r"^/api/v2/clients/([^/]+)$")
_ROTATE = re.compile(r"^/api/v2/clients/([^/]+)/rotate-secret$")
_GRANT = re.compile(r"^/api/v2/client-grants/([^/]+)$")


def mgmt_error(status: int, error: str, message: str, code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"statusCode": status, "error": error, "message": message}
    if code is not None:
        body["errorCode"] = code
    return body


class FakeClock:
    """Seconds that tests move by hand; shared by the fake and the adapter's `TokenCache`."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeAuth0(FakeIdP):
    def __init__(self, clock: FakeClock | None = None, *, token_lifetime: int = 86400) -> None:
        super().__init__()
        self.clock = clock or FakeClock()
        self.token_lifetime = token_lifetime
        self.permissions = ALL_PERMISSIONS
        self.admin_authorized = True
        self.resource_servers: dict[str, list[str]] = {API_AUDIENCE: ["orders:read", "orders:write"]}
        self.mgmt_tokens: dict[str, float] = {}  # token -> expiry on the fake clock
        self.clients: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, str] = {}
        self.grants: dict[str, dict[str, Any]] = {}
        self.rotation_delay = 0  # token requests refused with a freshly rotated secret
        self._pending: dict[str, int] = {}

    # -- helpers for tests ---------------------------------------------------------------------------------------
    @property
    def tokens_issued(self) -> int:
        return len(self.mgmt_tokens)

    def revoke_management_tokens(self) -> None:
        """Every Management token issued so far is refused from now on (as after a signing-key rotation)."""
        for token in self.mgmt_tokens:
            self.mgmt_tokens[token] = float("-inf")

    def grants_of(self, client_id: str) -> list[dict[str, Any]]:
        return [g for g in self.grants.values() if g["client_id"] == client_id]

    # -- routing ------------------------------------------------------------------------------------------------
    def route(self, request: httpx.Request) -> httpx.Response:
        expect(f"https://{request.url.host}" == TENANT, f"not the Auth0 tenant: {request.url}")
        path, method = request.url.path, request.method
        if path == "/.well-known/openid-configuration" and method == "GET":
            expect("authorization" not in request.headers, "credentials sent to the public discovery endpoint")
            return json_response(
                200,
                {
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{TENANT}/authorize",
                    "token_endpoint": f"{TENANT}/oauth/token",
                    "jwks_uri": f"{TENANT}/.well-known/jwks.json",
                    "registration_endpoint": f"{TENANT}/oidc/register",
                    "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
                },
            )
        if path == "/oauth/token" and method == "POST":
            expect_query(request, {})
            if request.headers.get("content-type") == "application/json":
                return self._management_token(request)
            return self._application_token(request)
        if path.startswith("/api/v2/"):
            denied = self._check_token(request)
            return denied if denied is not None else self._management(request)
        raise self.unexpected(request)

    # -- token endpoint -----------------------------------------------------------------------------------------
    def _management_token(self, request: httpx.Request) -> httpx.Response:
        expect("authorization" not in request.headers, "the Management token request sends credentials in the body")
        body = json_body(request)
        expect(
            isinstance(body, dict) and set(body) == {"grant_type", "client_id", "client_secret", "audience"},
            f"Management token body keys {sorted(body) if isinstance(body, dict) else body!r}",
        )
        expect(body["grant_type"] == "client_credentials", "grant_type is not client_credentials")
        if body["client_id"] != ADMIN_CLIENT_ID or body["client_secret"] != ADMIN_CLIENT_SECRET:
            return json_response(401, {"error": "access_denied", "error_description": "Unauthorized"})
        if body["audience"] != MGMT_AUDIENCE:
            return json_response(
                403,
                {
                    "error": "access_denied",
                    "error_description": f"Service not enabled within domain: {body['audience']}",
                },
            )
        if not self.admin_authorized:
            return json_response(
                403,
                {
                    "error": "access_denied",
                    "error_description": f'Client is not authorized to access "{MGMT_AUDIENCE}". You need to create a'
                    ' "client-grant" associated to this API.',
                },
            )
        token = fake_jwt({"iss": ISSUER, "aud": MGMT_AUDIENCE, "azp": ADMIN_CLIENT_ID, "jti": random_id(length=12)})
        self.mgmt_tokens[token] = self.clock() + self.token_lifetime
        return json_response(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "scope": self.permissions,
            },
        )

    def _application_token(self, request: httpx.Request) -> httpx.Response:
        creds = basic_credentials(request)
        expect(creds is not None, "the application token request does not use HTTP Basic")
        assert creds is not None
        form = form_body(request)
        expect(set(form) == {"grant_type", "audience"}, f"probe form fields {sorted(form)} != audience, grant_type")
        expect(form["grant_type"] == "client_credentials", "grant_type is not client_credentials")
        client_id, secret = creds
        if self.secrets.get(client_id) != secret:
            return json_response(401, {"error": "access_denied", "error_description": "Unauthorized"})
        if self._pending.get(client_id, 0) > 0:
            self._pending[client_id] -= 1
            return json_response(401, {"error": "access_denied", "error_description": "Unauthorized"})
        audience = form["audience"]
        if not any(g["client_id"] == client_id and g["audience"] == audience for g in self.grants.values()):
            return json_response(
                403,
                {
                    "error": "access_denied",
                    "error_description": f'Client "{client_id}" is not authorized to access resource server'
                    f' "{audience}".',
                },
            )
        claims = {"iss": ISSUER, "aud": audience, "azp": client_id, "sub": f"{client_id}@clients"}
        return json_response(200, {"access_token": fake_jwt(claims), "token_type": "Bearer", "expires_in": 86400})

    # -- Management API -----------------------------------------------------------------------------------------
    def _check_token(self, request: httpx.Request) -> httpx.Response | None:
        token = bearer(request)
        expect(token is not None, "the Management API call does not use Bearer")
        if self.mgmt_tokens.get(token or "", float("-inf")) <= self.clock():
            return json_response(
                401,
                mgmt_error(
                    401, "Unauthorized", "Expired token received for JSON Web Token validation", "invalid_token"
                ),
            )
        return None

    def _management(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/api/v2/clients" and method == "POST":
            expect_query(request, {})
            return self._create_client(request)
        if path == "/api/v2/clients" and method == "GET":
            return self._list_clients(request)
        if path == "/api/v2/client-grants" and method == "POST":
            expect_query(request, {})
            return self._create_grant(request)
        if path == "/api/v2/client-grants" and method == "GET":
            expect_no_body(request)
            params = dict(request.url.params)
            expect(set(params) == {"client_id"}, f"grant list parameters {sorted(params)}")
            return json_response(200, self.grants_of(params["client_id"]))
        if (m := _GRANT.match(path)) and method == "DELETE":
            expect_query(request, {})
            expect_no_body(request)
            if self.grants.pop(m.group(1), None) is None:
                return json_response(
                    404, mgmt_error(404, "Not Found", "The client grant does not exist", "inexistent_client_grant")
                )
            return httpx.Response(204)
        if (m := _ROTATE.match(path)) and method == "POST":
            expect_query(request, {})
            expect_no_body(request)
            return self._rotate(m.group(1))
        if m := _CLIENT.match(path):
            expect_query(request, {})
            return self._client(request, m.group(1))
        raise self.unexpected(request)

    def _create_client(self, request: httpx.Request) -> httpx.Response:
        body = json_body(request)
        expect(isinstance(body, dict), "client body is not an object")
        web = "callbacks" in body
        expect(set(body) == CLIENT_KEYS | ({"callbacks"} if web else set()), f"client body keys {sorted(body)}")
        expect(body["app_type"] == ("regular_web" if web else "non_interactive"), f"app_type {body['app_type']!r}")
        grants = ["authorization_code", "client_credentials"] if web else ["client_credentials"]
        expect(body["grant_types"] == grants, f"grant_types {body['grant_types']!r}")
        expect(body["token_endpoint_auth_method"] == "client_secret_basic", "token_endpoint_auth_method")
        expect(body["oidc_conformant"] is True, "oidc_conformant")
        expect(body["jwt_configuration"] == {"alg": "RS256"}, "jwt_configuration")
        metadata = body["client_metadata"]
        expect(set(metadata) == METADATA_KEYS, f"client_metadata keys {sorted(metadata)}")
        if web:
            expect(isinstance(body["callbacks"], list) and len(body["callbacks"]) == 1, "callbacks")
        problems = []
        if "<" in body["name"] or ">" in body["name"]:
            problems.append("Payload validation error: 'String does not match pattern ^[^<>]+$' on property name")
        if len(body["description"]) > 140:
            problems.append("Payload validation error: 'String is too long (> 140 chars)' on property description")
        if len(metadata) > 10 or any(not isinstance(v, str) or len(v) > 255 for v in metadata.values()):
            problems.append("Payload validation error: invalid client_metadata")
        if problems:
            return json_response(400, mgmt_error(400, "Bad Request", problems[0], "invalid_body"))
        client_id = random_id(length=32)
        secret = random_id(length=64)
        client = {
            "client_id": client_id,
            "tenant": "acme",
            "global": False,
            "is_first_party": True,
            "callbacks": list(body.get("callbacks", [])),
            "sso_disabled": False,
            "custom_login_page_on": True,
            **{k: v for k, v in body.items() if k != "callbacks"},
            "jwt_configuration": {"alg": "RS256", "lifetime_in_seconds": 36000, "secret_encoded": False},
        }
        self.clients[client_id] = client
        self.secrets[client_id] = secret
        return json_response(201, {**client, "client_secret": secret})

    def _list_clients(self, request: httpx.Request) -> httpx.Response:
        expect_no_body(request)
        params = dict(request.url.params)
        if set(params) == {"per_page"}:  # the verify read
            expect(params["per_page"] == "1", "per_page")
            return json_response(200, [self._public(c) for c in list(self.clients.values())[:1]])
        expect(
            set(params) == {"fields", "include_fields", "per_page", "page"},
            f"client list parameters {sorted(params)}",
        )
        expect(params["fields"] == "client_id,name,client_metadata", "fields")
        expect(params["include_fields"] == "true", "include_fields")
        per_page, page = int(params["per_page"]), int(params["page"])
        rows = sorted(self.clients.values(), key=lambda c: c["client_id"])[page * per_page : (page + 1) * per_page]
        return json_response(200, [{k: c[k] for k in ("client_id", "name", "client_metadata") if k in c} for c in rows])

    def _client(self, request: httpx.Request, client_id: str) -> httpx.Response:
        if client_id not in self.clients:
            return json_response(404, mgmt_error(404, "Not Found", "The client does not exist", "inexistent_client"))
        if request.method == "DELETE":
            expect_no_body(request)
            del self.clients[client_id]
            del self.secrets[client_id]
            for grant in self.grants_of(client_id):
                del self.grants[grant["id"]]
            return httpx.Response(204)
        if request.method == "PATCH":
            body = json_body(request)
            expect(isinstance(body, dict) and set(body) == {"name", "description", "callbacks"}, f"PATCH {body!r}")
            self.clients[client_id].update(body)
            return json_response(200, self._public(self.clients[client_id]))
        raise self.unexpected(request)

    def _rotate(self, client_id: str) -> httpx.Response:
        if client_id not in self.clients:
            return json_response(404, mgmt_error(404, "Not Found", "The client does not exist", "inexistent_client"))
        self.secrets[client_id] = random_id(length=64)  # the old secret dies at once
        self._pending[client_id] = self.rotation_delay
        return json_response(200, {**self.clients[client_id], "client_secret": self.secrets[client_id]})

    def _create_grant(self, request: httpx.Request) -> httpx.Response:
        body = json_body(request)
        expect(isinstance(body, dict) and set(body) == {"client_id", "audience", "scope"}, f"grant body {body!r}")
        expect(isinstance(body["scope"], list), "grant scope is not a list")
        if body["client_id"] not in self.clients:
            return json_response(404, mgmt_error(404, "Not Found", "The client does not exist", "inexistent_client"))
        allowed = self.resource_servers.get(body["audience"])
        if allowed is None:
            return json_response(
                404,
                mgmt_error(
                    404, "Not Found", "No resource server found by specified audience", "inexistent_resource_server"
                ),
            )
        unknown = [s for s in body["scope"] if s not in allowed]
        if unknown:
            return json_response(
                400,
                mgmt_error(400, "Bad Request", f"Scopes not defined by the resource server: {unknown}", "invalid_body"),
            )
        if any(g["client_id"] == body["client_id"] and g["audience"] == body["audience"] for g in self.grants.values()):
            return json_response(409, mgmt_error(409, "Conflict", "client_grant already exists", "conflict"))
        grant = {"id": random_id("cgr_", 16), **body}
        self.grants[grant["id"]] = grant
        return json_response(201, grant)

    @staticmethod
    def _public(client: dict[str, Any]) -> dict[str, Any]:
        return dict(client)
