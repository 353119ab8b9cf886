"""An in-process RFC 7591/7592 server with Curity's quirks (contracts/dcr-providers.md §2.3, §2.8, §4.2).

An `httpx.MockTransport` handler with state, built from Curity's DCR pages:

- discovery at `{issuer}/.well-known/openid-configuration`;
- the token endpoint issues a fresh one-time token of scope `dcr` (the IAT) to the admin client by client
  credentials (Basic), tokens of `management_scope` when configured, and opaque tokens to registered clients;
- registration (`POST /register`, `Bearer <IAT>`): each IAT works once, a reused one → 401 `invalid_token`;
  answers 201 with `registration_access_token`, `registration_client_uri`, `registration_access_token_expires_in`;
- `PUT {registration_client_uri}` (`Bearer <RAT>` or a management token) rotates the secret **and** the RAT; the old
  RAT → 401; `DELETE` → 204, a stale RAT → 401;
- **any GET on a registration URI fails the test** (on Curity a read rotates secret and RAT).

Every request is checked: method, path, `Authorization` scheme, `Content-Type` and the whole body (equality with
`expected_bodies` when the test queued them, else the RFC 7591 rules). A request it does not expect is recorded in
`problems` and raised as `UnexpectedRequest` (an `AssertionError`, which no adapter translates).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import parse_qs

import httpx

ISSUER = "https://curity.test/oauth/v2/oauth-anonymous"
ADMIN_ID = "keystile-admin"
ADMIN_SECRET = "admin-secret-" + "a" * 24
PUT_FORBIDDEN = {
    "client_secret",
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
    "registration_access_token_expires_in",
}
ALLOWED_REGISTRATION_KEYS = {
    "client_name",
    "grant_types",
    "response_types",
    "redirect_uris",
    "token_endpoint_auth_method",
    "scope",
}


class UnexpectedRequest(AssertionError):
    """A request the fake server does not expect."""


def _token() -> str:
    return secrets.token_urlsafe(24)


class Rfc7592Fake:
    """State and handler of the fake; `transport()` wires it into an `httpx.AsyncClient`.

    Args:
        issuer: the issuer it announces.
        management_scope: a scope whose admin tokens may manage any client (Curity `dcrm`), or None.
        rotate_on_put: whether a PUT issues a new secret.
        rotate_rat_on_put: whether a PUT issues a new RAT.
        give_client_uri: whether registration answers carry `registration_client_uri`.
        announce_registration: whether discovery names a `registration_endpoint`.
        require_iat: refuse registrations without a valid IAT.
    """

    def __init__(
        self,
        issuer: str = ISSUER,
        *,
        management_scope: str | None = None,
        rotate_on_put: bool = True,
        rotate_rat_on_put: bool = True,
        give_client_uri: bool = True,
        announce_registration: bool = True,
        require_iat: bool = True,
        static_iat: str | None = None,
    ) -> None:
        self.issuer = issuer
        self.management_scope = management_scope
        self.rotate_on_put = rotate_on_put
        self.rotate_rat_on_put = rotate_rat_on_put
        self.give_client_uri = give_client_uri
        self.announce_registration = announce_registration
        self.require_iat = require_iat
        self.static_iat = static_iat
        self.requests: list[httpx.Request] = []
        self.problems: list[str] = []
        self.iats: dict[str, bool] = {}  # IAT → used
        self.management_tokens: set[str] = set()
        self.clients: dict[str, dict[str, Any]] = {}  # client_id → {"secret", "rat", "metadata"}
        self.issued_client_tokens: list[str] = []
        self.expected_bodies: list[dict[str, Any]] = []
        self.replay_iat = False  # answer the next IAT request with the previous IAT (a caching bug elsewhere)
        self.lose_next_put_answer = False  # apply the next PUT, then time out (the answer is lost)
        self.fail_next: dict[tuple[str, str], httpx.Response] = {}  # (method, path) → canned answer, once
        self.admin_secret = ADMIN_SECRET
        self.omit_on_register: set[str] = set()  # fields left out of the next registration answers

    # -- wiring -------------------------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    @property
    def origin(self) -> str:
        url = httpx.URL(self.issuer)
        return f"{url.scheme}://{url.netloc.decode()}"

    @property
    def registration_endpoint(self) -> str:
        return f"{self.origin}/register"

    @property
    def token_endpoint(self) -> str:
        return f"{self.origin}/token"

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        try:
            canned = self.fail_next.pop((request.method, request.url.path), None)
            if canned is not None:
                return canned
            return self.route(request)
        except AssertionError as exc:
            self.problems.append(f"{request.method} {request.url}: {exc}")
            raise

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path == httpx.URL(self.issuer).path + "/.well-known/openid-configuration":
            return self.discovery()
        if request.method == "POST" and path == "/token":
            return self.token(request)
        if request.method == "POST" and path == "/register":
            return self.register(request)
        if path.startswith("/register/"):
            client_id = path.removeprefix("/register/")
            if request.method == "GET":
                raise UnexpectedRequest("GET on a registration URI: on Curity a read rotates secret and RAT")
            if request.method == "PUT":
                return self.put(request, client_id)
            if request.method == "DELETE":
                return self.delete(request, client_id)
        raise UnexpectedRequest(f"unexpected request {request.method} {request.url}")

    # -- helpers ------------------------------------------------------------------------------------------------

    def sent(self, method: str, path: str | None = None) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and (path is None or r.url.path == path)]

    def trace(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]

    def assert_clean(self) -> None:
        assert not self.problems, "the fake saw unexpected requests:\n" + "\n".join(self.problems)

    @staticmethod
    def error(status: int, code: str, description: str) -> httpx.Response:
        return httpx.Response(status, json={"error": code, "error_description": description})

    @staticmethod
    def bearer(request: httpx.Request) -> str | None:
        header = request.headers.get("authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None

    @staticmethod
    def json_body(request: httpx.Request) -> dict[str, Any]:
        if request.headers.get("content-type") != "application/json":
            raise UnexpectedRequest(f"Content-Type {request.headers.get('content-type')!r}")
        body = json.loads(request.content)
        if not isinstance(body, dict):
            raise UnexpectedRequest("body is not a JSON object")
        return body

    # -- endpoints ----------------------------------------------------------------------------------------------

    def discovery(self) -> httpx.Response:
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": f"{self.origin}/jwks",
            "grant_types_supported": ["client_credentials", "authorization_code"],
        }
        if self.announce_registration:
            document["registration_endpoint"] = self.registration_endpoint
        return httpx.Response(200, json=document, headers={"Cache-Control": "max-age=600"})

    def token(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            raise UnexpectedRequest(f"token request Content-Type {request.headers.get('content-type')!r}")
        form = {k: v[0] for k, v in parse_qs(request.content.decode(), strict_parsing=True).items()}
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            raise UnexpectedRequest("token request without HTTP Basic client authentication")
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            raise UnexpectedRequest(f"grant_type {form.get('grant_type')!r}")
        if client_id == ADMIN_ID:
            if secret != self.admin_secret:
                return self.error(401, "invalid_client", "bad admin credentials")
            scope = form.get("scope")
            if set(form) != {"grant_type", "scope"}:
                raise UnexpectedRequest(f"admin token form {form!r}")
            if scope == "dcr":
                if self.replay_iat and self.iats:
                    self.replay_iat = False
                    token = list(self.iats)[-1]
                else:
                    token = _token()
                    self.iats[token] = False
            elif self.management_scope is not None and scope == self.management_scope:
                token = _token()
                self.management_tokens.add(token)
            else:
                return self.error(400, "invalid_scope", f"scope {scope!r} is not allowed")
            return httpx.Response(200, json={"access_token": token, "token_type": "bearer", "expires_in": 300})
        client = self.clients.get(client_id)
        if client is None or client["secret"] != secret:
            return self.error(401, "invalid_client", "client authentication failed")
        token = _token()
        self.issued_client_tokens.append(token)
        return httpx.Response(200, json={"access_token": token, "token_type": "bearer", "expires_in": 300})

    def register(self, request: httpx.Request) -> httpx.Response:
        iat = self.bearer(request)
        if self.require_iat:
            if iat is None:
                return self.error(401, "invalid_token", "no initial access token")
            if self.static_iat is not None and iat == self.static_iat:
                pass
            elif self.iats.get(iat) is not False:
                return self.error(401, "invalid_token", "the initial access token is unknown or spent")
            else:
                self.iats[iat] = True
        body = self.json_body(request)
        if self.expected_bodies:
            expected = self.expected_bodies.pop(0)
            if body != expected:
                raise UnexpectedRequest(f"registration body {body!r} != {expected!r}")
        extra = set(body) - ALLOWED_REGISTRATION_KEYS
        if extra:
            raise UnexpectedRequest(f"unexpected registration fields {sorted(extra)}")
        if body.get("token_endpoint_auth_method") != "client_secret_basic":
            raise UnexpectedRequest("token_endpoint_auth_method must be client_secret_basic")
        if "redirect_uris" not in body and body.get("response_types", ["code"]) != [] and "response_types" in body:
            return self.error(400, "invalid_redirect_uri", "redirect_uris is mandatory property")
        client_id = "cl-" + secrets.token_hex(6)
        secret = _token()
        rat = _token()
        metadata = {**body, "client_id": client_id, "client_id_issued_at": 1_795_000_000}
        self.clients[client_id] = {"secret": secret, "rat": rat, "metadata": metadata}
        answer = self._answer(client_id)
        for name in self.omit_on_register:
            answer.pop(name, None)
        return httpx.Response(201, json=answer)

    def _answer(self, client_id: str) -> dict[str, Any]:
        client = self.clients[client_id]
        answer = {
            **client["metadata"],
            "client_secret": client["secret"],
            "client_secret_expires_at": 0,
            "registration_access_token": client["rat"],
            "registration_access_token_expires_in": 3600,
        }
        if self.give_client_uri:
            answer["registration_client_uri"] = f"{self.registration_endpoint}/{client_id}"
        return answer

    def _authorised(self, request: httpx.Request, client_id: str) -> bool:
        token = self.bearer(request)
        client = self.clients.get(client_id)
        if token in self.management_tokens:
            return True
        return client is not None and token is not None and token == client["rat"]

    def put(self, request: httpx.Request, client_id: str) -> httpx.Response:
        if not self._authorised(request, client_id):
            return self.error(401, "invalid_token", "the registration access token is not valid")
        body = self.json_body(request)
        forbidden = PUT_FORBIDDEN & set(body)
        if forbidden:
            raise UnexpectedRequest(f"PUT with forbidden fields {sorted(forbidden)}")
        if body.get("client_id") != client_id:
            raise UnexpectedRequest("PUT body client_id differs from the URI's")
        client = self.clients[client_id]
        client["metadata"] = {**body, "client_id_issued_at": client["metadata"]["client_id_issued_at"]}
        if self.rotate_on_put:
            client["secret"] = _token()
        if self.rotate_rat_on_put:
            client["rat"] = _token()
        if self.lose_next_put_answer:
            self.lose_next_put_answer = False
            raise httpx.ReadTimeout("the answer was lost", request=request)
        answer = self._answer(client_id)
        if not self.rotate_on_put:
            answer.pop("client_secret")
        return httpx.Response(200, json=answer)

    def delete(self, request: httpx.Request, client_id: str) -> httpx.Response:
        if client_id not in self.clients and self.bearer(request) in self.management_tokens:
            return self.error(404, "not_found", "no such client")
        if not self._authorised(request, client_id):
            return self.error(401, "invalid_token", "the registration access token is not valid")
        del self.clients[client_id]
        return httpx.Response(204)
