"""Plumbing shared by the vendor fakes (contracts/dcr-providers.md §4.2).

A fake is an `httpx.MockTransport` handler with state. It asserts the exact request the vendor documents
(method, path, query, `Authorization` scheme, `Content-Type`, whole body) and answers with the vendor's
documented bodies and error shapes. Any request it does not expect is recorded in `problems` and raised as
`UnexpectedRequest` (an `AssertionError`, which no adapter translates), and the `fake_*` fixtures assert at
teardown that `problems` is empty, so a test fails even if an adapter swallowed the error.

Faults (`inject`) reproduce the failure classes of §1.3 on the next matching request: connection refused, read
timeout (optionally after the request took effect), any status with headers and body, a 2xx with malformed JSON.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote_plus

import httpx

FaultKind = Literal["connect", "read_timeout", "status", "malformed"]


class UnexpectedRequest(AssertionError):
    """A request the vendor fake does not expect (wrong method, path, header, query or body)."""


@dataclass
class Fault:
    method: str
    path: str
    kind: FaultKind
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1
    after_effect: bool = False  # read_timeout / malformed: let the request take effect first

    def matches(self, request: httpx.Request) -> bool:
        return request.method == self.method and (self.path == "*" or request.url.path == self.path)


def random_id(prefix: str = "", length: int = 20) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def fake_jwt(claims: dict[str, Any]) -> str:
    """An unsigned-looking JWT (random signature): enough for claim checks; fakes never verify it."""

    def seg(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS256', 'kid': 'fake', 'typ': 'JWT'})}.{seg(claims)}.{random_id(length=43)}"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class FakeIdP:
    """Base of the vendor fakes: request log, fault injection, problem recording."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.problems: list[str] = []
        self._faults: list[Fault] = []

    # -- wiring -------------------------------------------------------------------------------------------------
    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        try:
            self.check(request)
            fault = self._take_fault(request)
            if fault is not None:
                return self._apply_fault(fault, request)
            return self.route(request)
        except AssertionError as exc:
            self.problems.append(f"{request.method} {request.url}: {exc}")
            raise

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def client(self) -> httpx.AsyncClient:
        """An AsyncClient with the contract's explicit timeouts (§1.4), wired to this fake."""
        return httpx.AsyncClient(
            transport=self.transport(), timeout=httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
        )

    def check(self, request: httpx.Request) -> None:
        """Checks every request gets, faults included (the Okta fake validates it against Okta's document)."""

    def route(self, request: httpx.Request) -> httpx.Response:  # pragma: no cover - overridden by every fake
        raise NotImplementedError

    def unexpected(self, request: httpx.Request, why: str = "unexpected request") -> UnexpectedRequest:
        return UnexpectedRequest(f"{why}: {request.method} {request.url}")

    # -- faults -------------------------------------------------------------------------------------------------
    def inject(
        self,
        method: str,
        path: str,
        kind: FaultKind,
        *,
        status: int = 500,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        after_effect: bool = False,
    ) -> None:
        """Make the next `times` requests matching `method` and `path` (`*` = any path) fail as `kind`."""
        self._faults.append(Fault(method, path, kind, status, dict(headers or {}), body, times, after_effect))

    def _take_fault(self, request: httpx.Request) -> Fault | None:
        for fault in self._faults:
            if fault.matches(request):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _apply_fault(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "connect":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if fault.after_effect:
            self.route(request)
        if fault.kind == "read_timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault.kind == "malformed":
            return httpx.Response(
                200 if request.method != "POST" else 201,
                content=b'{"client_id": "trunc',
                headers={"Content-Type": "application/json"},
            )
        if isinstance(fault.body, (dict, list)):
            return httpx.Response(fault.status, json=fault.body, headers=fault.headers)
        return httpx.Response(fault.status, content=(fault.body or "").encode(), headers=fault.headers)

    # -- what was sent ------------------------------------------------------------------------------------------
    def sent(self, method: str | None = None, path: str | None = None) -> list[httpx.Request]:
        return [
            r for r in self.requests if (method is None or r.method == method) and (path is None or r.url.path == path)
        ]

    def trace(self) -> list[str]:
        """`METHOD path` of every request, in order: what tests compare sequences with."""
        return [f"{r.method} {r.url.path}" for r in self.requests]

    def assert_clean(self) -> None:
        assert not self.problems, "the fake saw unexpected requests:\n" + "\n".join(self.problems)


# -- request assertions -----------------------------------------------------------------------------------------
def expect(condition: bool, message: str) -> None:
    if not condition:
        raise UnexpectedRequest(message)


def expect_query(request: httpx.Request, expected: dict[str, str]) -> None:
    """The query string holds exactly these parameters, each once."""
    parsed = parse_qs(request.url.query.decode(), keep_blank_values=True)
    actual = {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}
    expect(actual == expected, f"query {actual!r} != {expected!r}")


def expect_no_body(request: httpx.Request) -> None:
    expect(request.content == b"", f"expected no body, got {request.content[:200]!r}")
    expect("content-type" not in request.headers, "Content-Type sent without a body")


def json_body(request: httpx.Request) -> Any:
    expect(
        request.headers.get("content-type") == "application/json",
        f"Content-Type {request.headers.get('content-type')!r} != 'application/json'",
    )
    try:
        return json.loads(request.content)
    except ValueError as exc:
        raise UnexpectedRequest(f"body is not JSON: {request.content[:200]!r}") from exc


def form_body(request: httpx.Request) -> dict[str, str]:
    expect(
        request.headers.get("content-type") == "application/x-www-form-urlencoded",
        f"Content-Type {request.headers.get('content-type')!r} != 'application/x-www-form-urlencoded'",
    )
    parsed = parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)
    expect(all(len(v) == 1 for v in parsed.values()), f"repeated form fields: {parsed!r}")
    return {k: v[0] for k, v in parsed.items()}


def basic_credentials(request: httpx.Request) -> tuple[str, str] | None:
    """`(client_id, client_secret)` from `Authorization: Basic …` (RFC 6749 §2.3.1), else None."""
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    decoded = base64.b64decode(header[len("Basic ") :]).decode()
    user, _, password = decoded.partition(":")
    return unquote_plus(user), unquote_plus(password)


def bearer(request: httpx.Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[len("Bearer ") :] if header.startswith("Bearer ") else None


Clock = Callable[[], float]
