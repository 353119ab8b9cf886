"""The built-in IdP as an ASGI app (Starlette): `create_idp_app(config)`.

Routes (relative to where the app is served; every URL it publishes is built from `config.issuer`):

| route | what |
|---|---|
| `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server` | metadata (RFC 8414 §3) |
| `GET /jwks` | public signing keys (RFC 7517 §5) |
| `POST /token` | client credentials (RFC 6749 §4.4), JWT access tokens (RFC 9068) |
| `POST /register` | registration with an initial access token (RFC 7591 §3) |
| `GET`, `PUT`, `DELETE /register/{client_id}` | client configuration (RFC 7592 §2) |
| `POST /introspect` | token introspection (RFC 7662 §2) |

Everything is built in the factory (store, keys, admin client, facts file); nothing at import time. When
mounted inside another app the mount must match the issuer's path; the RFC 8414 URL at the origin
(`/.well-known/oauth-authorization-server/<path>`) is then the mounting app's to route.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keystile.idp.authorization import FormRequest, IdpAuthorizationServer, JsonBodyRequest, ResponseTriple
from keystile.idp.bootstrap import bootstrap
from keystile.idp.config import IdpConfig
from keystile.idp.keys import KeyRing, ensure_private_dir
from keystile.idp.store import DB_FILE, IdpStore

__all__ = ["MAX_BODY_BYTES", "create_idp_app"]

log = logging.getLogger("keystile.idp")

MAX_BODY_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)


def _response(triple: ResponseTriple) -> Response:
    status, body, headers = triple
    content = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
    return Response(content=content, status_code=status, headers=dict(headers))


async def _body(request: Request) -> bytes | None:
    body = await request.body()
    return None if len(body) > MAX_BODY_BYTES else body


async def _form_pairs(request: Request) -> list[tuple[str, str]] | None:
    body = await _body(request)
    if body is None:
        return None
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return []
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return []


async def _json_object(request: Request) -> dict[str, Any] | None:
    body = await _body(request)
    if body is None:
        return None
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def create_idp_app(config: IdpConfig) -> Starlette:
    """Build the IdP: open (or create) its store and keys in `config.data_dir`, put the admin client and the
    static initial access tokens in place, write `idp.json`, and return the ASGI app.

    `app.state.idp_facts` holds the `IdpFacts` (issuer, initial access token, admin client, audience).

    Raises:
        ConfigurationError: the data dir's key file is unreadable.
    """
    ensure_private_dir(config.data_dir)
    store = IdpStore(config.data_dir / DB_FILE)
    keyring = KeyRing(config.data_dir, config.access_token_ttl)
    facts = bootstrap(config, store)
    server = IdpAuthorizationServer(config, store, keyring)

    async def metadata(request: Request) -> Response:
        return JSONResponse(server.metadata, headers={"Cache-Control": "public, max-age=300"})

    async def jwks(request: Request) -> Response:
        document = await run_in_threadpool(keyring.jwks)
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})

    async def token(request: Request) -> Response:
        pairs = await _form_pairs(request)
        if pairs is None:
            return _error(413, "invalid_request", "request body too large")
        oauth_request = FormRequest("POST", config.url("/token"), request.headers, pairs)
        return _response(await run_in_threadpool(server.create_token_response, oauth_request))

    async def introspect(request: Request) -> Response:
        pairs = await _form_pairs(request)
        if pairs is None:
            return _error(413, "invalid_request", "request body too large")
        oauth_request = FormRequest("POST", config.url("/introspect"), request.headers, pairs)
        return _response(await run_in_threadpool(server.create_endpoint_response, "introspection", oauth_request))

    async def register(request: Request) -> Response:
        data = await _json_object(request)
        if data is None:
            return _error(413, "invalid_request", "request body too large")
        json_request = JsonBodyRequest("POST", config.url("/register"), request.headers, data)
        return _response(await run_in_threadpool(server.create_endpoint_response, "client_registration", json_request))

    async def configure(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        data = await _json_object(request) if request.method == "PUT" else {}
        if data is None:
            return _error(413, "invalid_request", "request body too large")
        uri = server.registration_client_uri(client_id)
        json_request = JsonBodyRequest(request.method, uri, request.headers, data, client_id=client_id)
        return _response(await run_in_threadpool(server.create_endpoint_response, "client_configuration", json_request))

    routes = [
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/token", token, methods=["POST"]),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/register", register, methods=["POST"]),
        Route("/register/{client_id}", configure, methods=["GET", "PUT", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.idp_facts = facts
    log.info("keystile idp (development IdP) issuer %s, data dir %s", config.issuer, config.data_dir)
    return app
