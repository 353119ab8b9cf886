"""The gateway's own answers (contracts/gateway.md §6), pre-encoded once."""

from __future__ import annotations

import json

__all__ = ["MESSAGES", "REASONS", "error_response"]

MESSAGES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "You cannot consume this service",
    404: "no Route matched with those values",
    413: "Request size limit exceeded",
    431: "Request header or cookie too large",
    500: "An unexpected error occurred",
    502: "An invalid response was received from the upstream server",
    504: "The upstream server is timing out",
}
NO_CONFIG = "No configuration loaded yet"
IDP_UNAVAILABLE = "Identity provider unavailable"

REASONS: dict[int, bytes] = {
    100: b"Continue",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    206: b"Partial Content",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    409: b"Conflict",
    413: b"Content Too Large",
    422: b"Unprocessable Content",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}

_BODIES: dict[str, bytes] = {}


def _body(message: str) -> bytes:
    body = _BODIES.get(message)
    if body is None:
        body = _BODIES[message] = json.dumps({"message": message}, separators=(",", ":")).encode()
    return body


def error_response(
    status: int,
    request_id: str,
    *,
    message: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    close: bool = False,
) -> tuple[bytes, int]:
    """A complete HTTP/1.1 response (head and JSON body) and its body length."""
    body = _body(message if message is not None else MESSAGES[status])
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Error")),
        b"Content-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
        b"X-Request-Id: " + request_id.encode("latin-1") + b"\r\n",
    ]
    if extra:
        for name, value in extra:
            head.append(name.encode("latin-1") + b": " + value.encode("latin-1") + b"\r\n")
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head), len(body)
