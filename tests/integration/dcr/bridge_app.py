"""A Konnect-compatible HTTP DCR bridge for the tests (contracts/dcr-providers.md §2.5, §4.3), served on loopback.

Four routes under `/dcr`: `POST /dcr/` (register), `DELETE /dcr/{client_id}`, `POST /dcr/{client_id}/new-secret`,
`POST /dcr/{client_id}/event-hook`; plus `/.well-known/openid-configuration` for the issuer. It checks `X-API-KEY`
(exact 401 body of the reference handler), validates the 11-field `ApplicationPayload` and the `EventHook` strictly
(any extra or missing field → 400 with an `error_description` array), answers in switchable shapes (201/200/202,
numeric, numeric-string or date-time times, extra fields, `error_description` string or array) and records what it
received.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WRONG_KEY_BODY = {"error": "Wrong API-Key", "error_description": "wrong x-api-key header"}
PAYLOAD_FIELDS: dict[str, type] = {
    "redirect_uris": list,
    "client_name": str,
    "grant_types": list,
    "scopes": list,
    "token_endpoint_auth_method": str,
    "application_description": str,
    "portal_id": str,
    "organization_id": str,
    "developer_id": str,
    "auth_strategy_id": str,
    "dcr_provider_id": str,
}
EVENT_FIELDS: dict[str, type] = {
    "event_type": str,
    "client_id": str,
    "application_id": str,
    "application_name": str,
    "application_description": str,
    "portal_id": str,
    "organization_id": str,
    "developer_id": str,
    "auth_strategy_id": str,
    "dcr_provider_id": str,
}
TimeFormat = Literal["number", "string", "datetime", "none", "garbage"]


@dataclass
class Received:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: Any


@dataclass
class BridgeState:
    """What the bridge does next and what it saw; `reset()` between tests."""

    api_key: str = ""
    register_status: int = 201
    time_format: TimeFormat = "number"
    extra_fields: bool = False
    omit: set[str] = field(default_factory=set)
    fail_next: dict[str, tuple[int, Any]] = field(default_factory=dict)  # route name → (status, body), once
    new_secret_client_id: str | None = None  # answer new-secret with another client_id
    received: list[Received] = field(default_factory=list)
    clients: dict[str, str] = field(default_factory=dict)

    def reset(self, api_key: str) -> None:
        self.__init__(api_key=api_key)  # type: ignore[misc]

    def sent(self, method: str) -> list[Received]:
        return [r for r in self.received if r.method == method]


def _validation_error(problems: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"error": "invalid_request", "error_description": problems}, status_code=400)


def _check_schema(body: Any, schema: dict[str, type], optional: dict[str, type] | None = None) -> list[dict[str, str]]:
    if not isinstance(body, dict):
        return [{"path": "", "message": "must be an object"}]
    allowed = {**schema, **(optional or {})}
    problems = [{"path": k, "message": "must NOT have additional properties"} for k in body if k not in allowed]
    problems += [{"path": k, "message": "is required"} for k in schema if k not in body]
    for key, kind in allowed.items():
        if key in body and not isinstance(body[key], kind):
            problems.append({"path": key, "message": f"must be {kind.__name__}"})
        if key in body and kind is list and not all(isinstance(v, str) for v in body[key]):
            problems.append({"path": key, "message": "items must be strings"})
    return problems


def build_bridge(state: BridgeState) -> Starlette:
    """The bridge app bound to `state`."""

    async def record(request: Request) -> Any:
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = await request.json()
            except ValueError:
                body = raw.decode(errors="replace")
        state.received.append(Received(request.method, request.scope["raw_path"].decode(), dict(request.headers), body))
        return body

    def authorised(request: Request) -> bool:
        return secrets.compare_digest(request.headers.get("x-api-key", ""), state.api_key)

    def canned(route: str) -> Response | None:
        answer = state.fail_next.pop(route, None)
        if answer is None:
            return None
        status, body = answer
        if isinstance(body, (dict, list)):
            return JSONResponse(body, status_code=status)
        return Response(body or "", status_code=status, media_type="application/json")

    def times() -> dict[str, Any]:
        now = int(time.time())
        if state.time_format == "number":
            return {"client_id_issued_at": now, "client_secret_expires_at": 0}
        if state.time_format == "string":
            return {"client_id_issued_at": str(now), "client_secret_expires_at": str(now + 3600)}
        if state.time_format == "datetime":
            return {
                "client_id_issued_at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
                "client_secret_expires_at": None,
            }
        if state.time_format == "garbage":
            return {"client_id_issued_at": "yesterday", "client_secret_expires_at": ["soon"]}
        return {}

    async def register(request: Request) -> Response:
        body = await record(request)
        if not authorised(request):
            return JSONResponse(WRONG_KEY_BODY, status_code=401)
        failure = canned("register")
        if failure is not None:
            return failure
        problems = _check_schema(body, PAYLOAD_FIELDS)
        if problems:
            return _validation_error(problems)
        client_id = "br-" + secrets.token_hex(6)
        secret = secrets.token_urlsafe(24)
        state.clients[client_id] = secret
        answer: dict[str, Any] = {"client_id": client_id, "client_secret": secret, **times()}
        if state.extra_fields:
            answer.update({"client_name": body["client_name"], "bridge_version": "1.2.3", "links": {"self": "/x"}})
        for name in state.omit:
            answer.pop(name, None)
        return JSONResponse(answer, status_code=state.register_status)

    async def delete(request: Request) -> Response:
        await record(request)
        if not authorised(request):
            return JSONResponse(WRONG_KEY_BODY, status_code=401)
        failure = canned("delete")
        if failure is not None:
            return failure
        if state.clients.pop(request.path_params["client_id"], None) is None:
            return JSONResponse({"error": "not_found", "error_description": "no such client"}, status_code=404)
        return Response(status_code=204)

    async def new_secret(request: Request) -> Response:
        body = await record(request)
        if not authorised(request):
            return JSONResponse(WRONG_KEY_BODY, status_code=401)
        failure = canned("new_secret")
        if failure is not None:
            return failure
        client_id = request.path_params["client_id"]
        if body is not None:
            return _validation_error([{"path": "", "message": "no body expected"}])
        if client_id not in state.clients:
            return JSONResponse({"error": "not_found", "error_description": "no such client"}, status_code=404)
        state.clients[client_id] = secrets.token_urlsafe(24)
        return JSONResponse(
            {"client_id": state.new_secret_client_id or client_id, "client_secret": state.clients[client_id]}
        )

    async def event_hook(request: Request) -> Response:
        body = await record(request)
        if not authorised(request):
            return JSONResponse(WRONG_KEY_BODY, status_code=401)
        failure = canned("event_hook")
        if failure is not None:
            return failure
        event_type = body.get("event_type") if isinstance(body, dict) else None
        if event_type == "update_application":
            problems = _check_schema(body, {**EVENT_FIELDS, "redirect_uris": list})
        elif event_type in ("add_registration", "remove_registration"):
            problems = _check_schema(body, {**EVENT_FIELDS, "api_product_version_id": str}, {"audience": str})
        else:
            problems = [{"path": "event_type", "message": "unknown event"}]
        if problems:
            return _validation_error(problems)
        return JSONResponse({"status": "ok"})

    async def unknown(request: Request) -> Response:
        await record(request)
        return JSONResponse({"error": "not_found", "error_description": "no such route"}, status_code=404)

    async def discovery(request: Request) -> Response:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse({"issuer": origin, "token_endpoint": f"{origin}/token"})

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route("/dcr/", register, methods=["POST"]),
            Route("/dcr/{client_id}", delete, methods=["DELETE"]),
            Route("/dcr/{client_id}/new-secret", new_secret, methods=["POST"]),
            Route("/dcr/{client_id}/event-hook", event_hook, methods=["POST"]),
            Route("/{path:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )


class ThreadedServer:
    """Serve an ASGI app with uvicorn on `127.0.0.1:<free port>` in a daemon thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="bridge-server", daemon=True)

    def start(self, limit: float = 10.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + limit
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the bridge server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
