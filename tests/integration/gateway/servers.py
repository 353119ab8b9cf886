"""Real loopback peers for the gateway tests: an echo upstream, an OpenID provider with real RSA keys, a config feed.

All listen on 127.0.0.1 port 0 (aiohttp), count the requests they get, and can be stopped and started again
on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey


class LoopbackServer:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


# -- upstream -----------------------------------------------------------------------------------------------
class EchoUpstream(LoopbackServer):
    """Answers every request with JSON describing it: method, path, query, headers (multi), body."""

    def __init__(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        super().__init__(app)
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path.endswith("/slow"):
            await asyncio.sleep(5)
        if request.path.endswith("/delay"):
            await asyncio.sleep(1)
        if request.path.endswith("/stream"):
            response = web.StreamResponse(status=200)
            response.content_type = "text/plain"
            await response.prepare(request)
            for i in range(5):
                await response.write(f"chunk{i}\n".encode())
            await response.write_eof()
            return response
        info = {
            "method": request.method,
            "path": request.raw_path.split("?", 1)[0],
            "query": request.query_string,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_len": len(body),
        }
        self.requests.append(info)
        return web.json_response(info, headers={"Connection": "keep-alive", "X-Upstream": "yes"})


def header(info: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in info["headers"] if k.lower() == name.lower()]


# -- identity provider ------------------------------------------------------------------------------------------
@dataclass
class IdpClientReg:
    client_id: str
    secret: str


@dataclass
class FakeIdp:
    """An OpenID provider with real RS256 keys: discovery, JWKS, client_credentials token endpoint, introspection."""

    server: LoopbackServer | None = None
    keys: list[RSAKey] = field(default_factory=list)
    published: list[RSAKey] = field(default_factory=list)
    clients: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=lambda: {"discovery": 0, "jwks": 0, "token": 0, "introspect": 0})
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    opaque: dict[str, dict[str, Any]] = field(default_factory=dict)
    expires_in: int = 300
    token_status: int | None = None  # force an answer status (429, 500)
    token_delay: float = 0.0  # seconds the token endpoint takes to answer
    jwks_max_age: int | None = None

    @property
    def issuer(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def signing_key(self) -> RSAKey:
        return self.keys[-1]

    async def start(self) -> None:
        if not self.keys:
            self.keys.append(_rsa("k1"))
            self.published = list(self.keys)
        if self.server is None:
            app = web.Application()
            app.router.add_get("/.well-known/openid-configuration", self._discovery)
            app.router.add_get("/jwks", self._jwks)
            app.router.add_post("/token", self._token)
            app.router.add_post("/introspect", self._introspect)
            self.server = LoopbackServer(app)
        await self.server.start()

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop()

    def register(self) -> IdpClientReg:
        client_id = "c-" + uuid.uuid4().hex[:10]
        secret = secrets.token_urlsafe(18)
        self.clients[client_id] = secret
        return IdpClientReg(client_id, secret)

    def rotate(self) -> RSAKey:
        """Publish a new key, then sign with it (the old one stays published)."""
        key = _rsa(f"k{len(self.keys) + 1}")
        self.keys.append(key)
        self.published = list(self.keys)
        return key

    def mint(
        self, claims: dict[str, Any] | None = None, *, key: RSAKey | None = None, header: dict[str, Any] | None = None
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "client_id": "unset",
            "iat": now,
            "exp": now + self.expires_in,
            "jti": uuid.uuid4().hex,
        }
        body.update(claims or {})
        key = key or self.signing_key
        hdr = {"alg": "RS256", "kid": key.kid}
        hdr.update(header or {})
        return jwt.encode(hdr, body, key)

    async def _discovery(self, request: web.Request) -> web.Response:
        self.calls["discovery"] += 1
        return web.json_response(
            {
                "issuer": self.issuer,
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "introspection_endpoint": f"{self.issuer}/introspect",
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.calls["jwks"] += 1
        headers = {"Cache-Control": f"max-age={self.jwks_max_age}"} if self.jwks_max_age is not None else {}
        return web.json_response({"keys": [k.as_dict(private=False) for k in self.published]}, headers=headers)

    def _basic(self, request: web.Request) -> tuple[str, str] | None:
        value = request.headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return None
        from urllib.parse import unquote_plus

        raw = base64.b64decode(value[6:]).decode()
        cid, _, secret = raw.partition(":")
        return unquote_plus(cid), unquote_plus(secret)

    async def _token(self, request: web.Request) -> web.Response:
        self.calls["token"] += 1
        form = dict(await request.post())
        self.token_requests.append({"form": form, "authorization": request.headers.get("Authorization")})
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_status is not None:
            return web.json_response(
                {"error": "temporarily_unavailable"}, status=self.token_status, headers={"Retry-After": "7"}
            )
        creds = self._basic(request) or (str(form.get("client_id", "")), str(form.get("client_secret", "")))
        if form.get("grant_type") != "client_credentials" or self.clients.get(creds[0]) != creds[1] or not creds[1]:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = self.mint({"client_id": creds[0], "cid": creds[0], "scope": str(form.get("scope", ""))})
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in})

    async def _introspect(self, request: web.Request) -> web.Response:
        self.calls["introspect"] += 1
        form = dict(await request.post())
        if self._basic(request) != ("introspector", "introspector-secret"):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(self.opaque.get(str(form.get("token")), {"active": False}))


def _rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


# -- config feed ------------------------------------------------------------------------------------------
class FakeFeed(LoopbackServer):
    """`GET /v2/data-plane/config` as contracts/gateway.md §2.1 describes it (one token, long poll, ETag)."""

    def __init__(self, token: str) -> None:
        app = web.Application()
        app.router.add_get("/v2/data-plane/config", self._config)
        super().__init__(app)
        self.token = token
        self.snapshot: dict[str, Any] | None = None
        self.changed = asyncio.Event()
        self.requests: list[dict[str, str]] = []

    def publish(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def etag(self) -> str:
        assert self.snapshot is not None
        return f'"{self.snapshot["version"]}"'

    async def _config(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else auth
        if token != self.token:
            return web.json_response(
                {"status": 401, "title": "Unauthorized"}, status=401, content_type="application/problem+json"
            )
        wait_raw = request.query.get("wait", "0")
        if not wait_raw.isdigit() or int(wait_raw) > 60:
            return web.json_response({"status": 400}, status=400, content_type="application/problem+json")
        wait = int(wait_raw)
        if self.snapshot is None:
            return web.json_response({"status": 503}, status=503)
        if request.headers.get("If-None-Match") == self.etag:
            if wait == 0:
                return web.Response(status=304)
            changed = self.changed
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                return web.Response(status=304)
        return web.Response(
            body=json.dumps(self.snapshot).encode(),
            headers={"ETag": self.etag, "Cache-Control": "no-store", "Content-Type": "application/json"},
        )
