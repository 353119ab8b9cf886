"""The proxy server (contracts/gateway.md §4–§7): an asyncio Protocol with httptools parsing.

One `_Request` per HTTP request carries the parse state, the proxy state and the access-log fields. A
request whose head is complete runs as one task: match the route, authenticate, then stream the body to
a pooled upstream connection and the answer back. Requests on one connection run in order.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import itertools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

from keystile.gateway.accesslog import AccessLog
from keystile.gateway.auth import Authenticator, AuthRejectedError, AuthResult
from keystile.gateway.eager import run_eagerly
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.responses import NO_CONFIG, REASONS, error_response
from keystile.gateway.routes import MalformedPathError, join_upstream_path, normalize_path
from keystile.gateway.tables import CompiledRoute, GatewayConfig
from keystile.gateway.upstream import UpstreamConnection, UpstreamPool

__all__ = ["Gateway", "ServerOptions"]

log = logging.getLogger("keystile.gateway")

MAX_HEADER_BYTES = 32 * 1024
BODY_BUFFER_PAUSE = 256 * 1024
CLIENT_IDLE_TIMEOUT = 75.0
TIMEOUT_TICK = 0.05

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Request headers the gateway rewrites itself.
_REQ_DROP = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
    b"x-credential-identifier",
}
_RESP_DROP = HOP_BY_HOP | {b"content-length", b"x-request-id"}  # Content-Length is re-added as sent
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_NO_BODY_STATUS = frozenset({204, 304})
_CONNECTION_PLAIN = frozenset({b"keep-alive", b"close", b""})
# request headers kept aside while parsing (the last one wins; duplicates are still in `headers`)
_SPECIAL = {
    b"content-length": "h_length",
    b"transfer-encoding": "h_te",
    b"x-request-id": "h_request_id",
    b"expect": "h_expect",
    b"user-agent": "h_user_agent",
    b"connection": "h_connection",
}


@dataclass
class ServerOptions:
    max_body_size: int = 10 * 1024 * 1024
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    insecure_cookies: bool = False


class _Request:
    """One request: parsed head, body relay, upstream exchange, log fields."""

    __slots__ = (
        "app_id",
        "auth_failure",
        "auth_method",
        "body_buf",
        "body_buffered",
        "body_chunked",
        "body_done",
        "bytes_in",
        "bytes_out",
        "conn",
        "gateway",
        "h_connection",
        "h_expect",
        "h_length",
        "h_request_id",
        "h_te",
        "h_user_agent",
        "head_sent",
        "headers",
        "is_head",
        "keep_alive",
        "last_io",
        "method",
        "out",
        "path",
        "pending",
        "proto",
        "read_timeout",
        "request_id",
        "resp_chunked",
        "resp_close_delimited",
        "resp_reason",
        "resp_skip",
        "route_label",
        "set_cookie",
        "started",
        "status",
        "too_large",
        "up_started",
        "upstream_status",
        "url",
        "version",
    )

    def __init__(self, proto: _ClientProtocol) -> None:
        self.proto = proto
        self.gateway = proto.gateway
        self.url = b""
        self.headers: list[tuple[bytes, bytes, bytes]] = []
        self.method = "GET"
        self.version = "1.1"
        self.keep_alive = True
        self.body_buf: list[bytes] = []
        self.body_buffered = 0
        self.body_chunked = False
        self.body_done = False
        self.h_connection: bytes | None = None
        self.h_expect: bytes | None = None
        self.h_length: bytes | None = None
        self.h_request_id: bytes | None = None
        self.h_te: bytes | None = None
        self.h_user_agent: bytes | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.too_large = False
        self.conn: UpstreamConnection | None = None
        self.head_sent = False  # request head written upstream
        self.pending = False  # proxying: the upstream exchange completes the request (Gateway.complete)
        self.request_id = ""
        self.path = ""
        self.route_label = ""
        self.status = 0
        self.upstream_status = 0
        self.up_started = 0.0
        self.app_id = ""
        self.auth_method = ""
        self.auth_failure = ""
        self.set_cookie: bytes | None = None
        self.started = 0.0
        self.resp_reason = b""
        self.resp_chunked = False
        self.resp_close_delimited = False
        self.resp_skip = False
        self.is_head = False
        self.read_timeout = 60.0
        self.last_io = 0.0
        self.out: list[bytes] = []

    # -- request body (client → upstream) ------------------------------------------------------------
    def on_body(self, data: bytes) -> None:
        self.bytes_in += len(data)
        limit = self.gateway.options.max_body_size
        if limit and self.bytes_in > limit:
            if not self.too_large:
                self.too_large = True
                self.proto.body_too_large(self)
            return
        conn = self.conn
        if self.head_sent and conn is not None and conn.transport is not None:
            if self.body_chunked:
                conn.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                conn.transport.write(data)
            return
        self.body_buf.append(data)
        self.body_buffered += len(data)
        if self.body_buffered > BODY_BUFFER_PAUSE:
            self.proto.pause_reading()

    def on_body_done(self) -> None:
        self.body_done = True
        conn = self.conn
        if self.head_sent and self.body_chunked and conn is not None and conn.transport is not None:
            conn.transport.write(b"0\r\n\r\n")

    # -- upstream events -----------------------------------------------------------------------------
    def up_status(self, reason: bytes) -> None:
        self.resp_reason = reason

    def up_headers_complete(self, parser: Any, headers: list[tuple[bytes, bytes]]) -> None:
        status = parser.get_status_code()
        if status < 200:
            # an interim answer: not forwarded, wait for the real one
            self.resp_skip = True
            return
        self.last_io = self.proto.loop.time()
        self.upstream_status = status
        self.status = status
        head = [b"HTTP/1.1 %d %s\r\n" % (status, self.resp_reason or REASONS.get(status, b"Unknown"))]
        has_length = False
        upstream_chunked = False
        named: set[bytes] | None = None
        for name, value in headers:
            lname = name.lower()
            if lname in _RESP_DROP:
                if lname == b"content-length":
                    has_length = True
                    head.append(b"Content-Length: " + value + b"\r\n")
                elif lname == b"transfer-encoding":
                    upstream_chunked = True
                elif lname == b"connection":
                    tokens = {t.strip() for t in value.lower().split(b",")} - _CONNECTION_PLAIN
                    if tokens:
                        named = tokens if named is None else named | tokens
                continue
            head.append(name + b": " + value + b"\r\n")
        if named:
            # headers the upstream's Connection header names are hop-by-hop too (RFC 9110 §7.6.1)
            head = [head[0], *(h for h in head[1:] if h.split(b":", 1)[0].lower() not in named)]
        head.append(b"X-Request-Id: " + self.request_id.encode() + b"\r\n")
        if self.set_cookie is not None:
            head.append(self.set_cookie)
        body_allowed = status not in _NO_BODY_STATUS and not self.is_head
        self.resp_close_delimited = body_allowed and not has_length and not upstream_chunked
        if body_allowed and not has_length:
            if self.version == "1.1":
                self.resp_chunked = True
                head.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.resp_chunked = False
                self.keep_alive = False
        else:
            self.resp_chunked = False
        if not self.keep_alive or not self.body_done:
            self.keep_alive = False
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        self.out.append(b"".join(head))
        if self.is_head:
            # httptools cannot be told a HEAD answer has no body: finish here, do not reuse the connection.
            self._finish_upstream(reuse=False)

    def up_body(self, data: bytes) -> None:
        if self.resp_skip:
            return
        self.bytes_out += len(data)
        self.last_io = self.proto.loop.time()
        if self.resp_chunked:
            self.out.append(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.out.append(data)

    def up_message_complete(self, parser: Any) -> None:
        if self.resp_skip:
            self.resp_skip = False
            return
        if self.resp_chunked:
            self.out.append(b"0\r\n\r\n")
        self._finish_upstream(reuse=parser.should_keep_alive() and self.body_done)

    def up_lost(self) -> None:
        if self.status and self.resp_close_delimited:
            if self.resp_chunked:
                self.out.append(b"0\r\n\r\n")
            self.flush()
            self._finish_upstream(reuse=False)
            return
        self._fail_upstream(502)

    def flush(self) -> None:
        """Write what the last upstream read produced in one call (head and body together)."""
        if self.out:
            self.proto.write(self.out[0] if len(self.out) == 1 else b"".join(self.out))
            self.out.clear()

    def up_invalid(self) -> None:
        self._fail_upstream(502)

    def up_pause(self) -> None:
        self.proto.pause_reading()

    def up_resume(self) -> None:
        self.proto.resume_reading()

    def on_read_timeout(self) -> None:
        if self.pending:
            self._fail_upstream(504)

    def _finish_upstream(self, reuse: bool) -> None:
        self.flush()
        self.gateway.waiting.discard(self)
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.exchange = None
            if reuse:
                self.gateway.pool.release(conn)
            else:
                conn.close()
        self._complete()

    def _fail_upstream(self, status: int) -> None:
        self.gateway.waiting.discard(self)
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        self.out.clear()
        if self.status:
            # the answer had started: all we can do is cut the client connection
            self.keep_alive = False
            self.proto.abort()
        else:
            self.upstream_status = 0
            self.gateway.reply(self, status, close=not self.body_done)
        self._complete()

    def _complete(self) -> None:
        self.gateway.waiting.discard(self)
        if self.pending:
            self.pending = False
            self.gateway.complete(self)


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpRequestParser(self)
        self.cur: _Request | None = None
        self.active: _Request | None = None
        self.queue: collections.deque[_Request] = collections.deque()
        self.peer = ""
        self.trusted = False
        self.forwarded = b""
        self.header_bytes = 0
        self.closing = False
        self.reading_paused = False
        self.writing_paused = False
        self.last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        self.trusted = self.gateway.is_trusted(self.peer)
        self.forwarded = b"X-Forwarded-For: " + self.peer.encode() + b"\r\nX-Forwarded-Proto: http\r\n"
        self.last_active = self.loop.time()
        self.gateway.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.gateway.connections.discard(self)
        req = self.active
        if req is not None and req.conn is not None:
            # the client went away: stop the upstream exchange too
            conn = req.conn
            req.conn = None
            conn.abort()
            req.status = req.status or 499
            req._complete()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad_request(400)
        except httptools.HttpParserError:
            self._bad_request(431 if self.header_bytes > MAX_HEADER_BYTES else 400)

    def _bad_request(self, status: int) -> None:
        if self.active is not None or self.closing:
            self.abort()
            return
        req = self.cur or _Request(self)
        req.request_id = self.gateway._new_request_id()
        req.started = self.loop.time()
        self.gateway.reply(req, status, close=True)
        self.gateway.log_request(req, None)
        self.closing = True
        if self.transport is not None:
            self.transport.close()  # the answer said `Connection: close`: flush it and end the connection

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.cur = _Request(self)
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        assert self.cur is not None
        self.cur.url += url
        self.header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.cur is not None
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        lname = name.lower()
        special = _SPECIAL.get(lname)
        if special is not None:
            setattr(self.cur, special, value)
        self.cur.headers.append((lname, name, value))

    def on_headers_complete(self) -> None:
        req = self.cur
        assert req is not None
        parser = self.parser
        req.method = parser.get_method().decode("ascii", "replace")
        req.version = parser.get_http_version()
        req.keep_alive = parser.should_keep_alive()
        req.started = self.loop.time()
        if req.h_length is None and req.h_te is None:
            # nothing follows the head: complete now, since the pipeline may run before on_message_complete
            req.body_done = True
        if self.active is None:
            self._start(req)
        else:
            self.queue.append(req)

    def on_body(self, body: bytes) -> None:
        if self.cur is not None:
            self.cur.on_body(body)

    def on_message_complete(self) -> None:
        if self.cur is not None:
            self.cur.on_body_done()

    def _start(self, req: _Request) -> None:
        self.active = req
        # Run the pipeline eagerly: with cached credentials and a pooled upstream connection it never
        # suspends, and a task per request would cost more than the key check (Python 3.12's eager tasks).
        run_eagerly(self.gateway.handle(req))

    def request_finished(self, req: _Request) -> None:
        self.active = None
        self.last_active = self.loop.time()
        if self.closing or not req.keep_alive or not req.body_done or self.gateway.shutting_down:
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        if self.reading_paused:
            self.resume_reading()
        if self.queue:
            self._start(self.queue.popleft())

    def body_too_large(self, req: _Request) -> None:
        if req is self.active and not req.status and req.conn is None:
            # still authenticating: the 413 goes out when the handler replies
            return
        if req is self.active and req.status == 0:
            req._fail_upstream(413)
            return
        self.abort()

    # flow control
    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.writing_paused = True
        req = self.active
        if req is not None and req.conn is not None and req.conn.transport is not None:
            req.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        req = self.active
        if req is not None and req.conn is not None and req.conn.transport is not None:
            req.conn.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class Gateway:
    """The request pipeline and the state it reads: the current config, caches, pools, metrics, log."""

    def __init__(
        self,
        *,
        options: ServerOptions,
        authenticator: Authenticator,
        metrics: GatewayMetrics,
        access_log: AccessLog,
        pool: UpstreamPool | None = None,
    ) -> None:
        self.options = options
        self.auth = authenticator
        self.metrics = metrics
        self.access_log = access_log
        self.pool = pool or UpstreamPool()
        self.config: GatewayConfig | None = None
        self.connections: set[_ClientProtocol] = set()
        self.shutting_down = False
        self._inflight = 0
        self._idle_event: asyncio.Event | None = None
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._timeouts: asyncio.TimerHandle | None = None
        self.waiting: set[_Request] = set()  # upstream exchanges in progress (read timeouts)
        self._id_prefix = os.urandom(8).hex()
        self._id_counter = itertools.count(1)

    def _new_request_id(self) -> str:
        """Unique without a syscall: a random per-process prefix and a counter."""
        return f"{self._id_prefix}-{next(self._id_counter):08x}"

    # -- config -------------------------------------------------------------------------------------------
    def swap(self, config: GatewayConfig) -> None:
        """Serve `config` from the next request on; requests in flight keep theirs."""
        self.config = config
        self.metrics.config_loaded(config.version)

    def is_trusted(self, peer: str) -> bool:
        if not self.options.trusted_proxies or not peer:
            return False
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in self.options.trusted_proxies)

    # -- serving ----------------------------------------------------------------------------------------
    def protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        return lambda: _ClientProtocol(self)

    async def start(self, sock: Any) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self.protocol_factory(), sock=sock, backlog=2048)
        self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = loop.call_later(5.0, self._sweep)
            self._timeouts = loop.call_later(TIMEOUT_TICK, self._check_timeouts)
        return server

    def _check_timeouts(self) -> None:
        """Read timeouts of upstream exchanges, checked every 50 ms (cheaper than a timer per request)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for req in [r for r in self.waiting if now - r.last_io >= r.read_timeout]:
            req.on_read_timeout()
        self._timeouts = loop.call_later(TIMEOUT_TICK, self._check_timeouts)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for proto in list(self.connections):
            if proto.active is None and now - proto.last_active > CLIENT_IDLE_TIMEOUT and proto.transport is not None:
                proto.transport.close()
        self._sweeper = loop.call_later(5.0, self._sweep)

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting, let requests in flight finish (≤ `grace` s), close everything."""
        self.shutting_down = True
        for server in self._servers:
            server.close()
        for proto in list(self.connections):
            if proto.active is None and proto.transport is not None:
                proto.transport.close()
        deadline = time.monotonic() + grace
        while any(p.active is not None for p in self.connections) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polling: requests end in protocol callbacks, not in one awaitable
        for proto in list(self.connections):
            proto.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._timeouts is not None:
            self._timeouts.cancel()
        self.pool.close()
        self.access_log.flush()

    # -- the pipeline -----------------------------------------------------------------------------------
    def reply(
        self,
        req: _Request,
        status: int,
        *,
        message: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        close: bool = False,
    ) -> None:
        if close or not req.body_done:
            req.keep_alive = False
        data, n = error_response(status, req.request_id, message=message, extra=extra, close=not req.keep_alive)
        req.status = status
        if req.method == "HEAD":  # the same head, no body (RFC 9110 §9.3.2)
            data = data[: len(data) - n]
            n = 0
        req.bytes_out = n
        req.proto.write(data)

    async def handle(self, req: _Request) -> None:
        """Run the pipeline; a proxied request completes later, from the upstream exchange (`complete`)."""
        try:
            await self._handle(req)
        except Exception:
            log.exception("unexpected error handling request %s", req.request_id)
            if req.pending:
                req.pending = False
                if req.conn is not None:
                    req.conn.abort()
                    req.conn = None
            if not req.status:
                self.reply(req, 500, close=True)
            else:
                req.proto.abort()
        if not req.pending:
            self.complete(req)

    def complete(self, req: _Request) -> None:
        """The request is over: log it and let its connection go on."""
        try:
            self.log_request(req, self.config)
        finally:
            req.proto.request_finished(req)

    def log_request(self, req: _Request, config: GatewayConfig | None) -> None:
        duration = req.proto.loop.time() - req.started
        route = req.route_label
        self.metrics.request(route, req.status, req.auth_method, req.app_id, duration)
        if req.up_started:
            self.metrics.upstream(route, req.proto.loop.time() - req.up_started)
        self.access_log.write(
            request_id=req.request_id,
            client_ip=req.proto.peer,
            method=req.method,
            path=req.path,
            route=route,
            status=req.status,
            bytes_in=req.bytes_in,
            bytes_out=req.bytes_out,
            duration=duration,
            upstream_status=req.upstream_status or None,
            upstream_duration=(req.proto.loop.time() - req.up_started) if req.up_started else None,
            application_id=req.app_id or None,
            auth_method=req.auth_method or None,
            auth_failure=req.auth_failure or None,
            config_version=config.version if config is not None else None,
            user_agent=req.h_user_agent,
        )

    async def _handle(self, req: _Request) -> None:
        incoming_id = req.h_request_id
        req.request_id = (
            incoming_id.decode("ascii")
            if incoming_id is not None and _REQUEST_ID.match(incoming_id)
            else self._new_request_id()
        )
        url = req.url
        qpos = url.find(b"?")
        raw_path = url if qpos < 0 else url[:qpos]
        query = b"" if qpos < 0 else url[qpos + 1 :]
        if not raw_path.startswith(b"/"):
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self.reply(req, 400, close=True)
                return
            raw_path = parsed.path or b"/"
            query = parsed.query or b""
        req.path = raw_path.decode("latin-1")
        if req.too_large:
            self.reply(req, 413, close=True)
            return
        config = self.config
        if config is None:
            self.reply(req, 503, message=NO_CONFIG, extra=[("Retry-After", "5")])
            return
        limit = self.options.max_body_size
        if limit:
            length = req.h_length
            if length is not None and length.isdigit() and int(length) > limit:
                self.reply(req, 413, close=True)
                return
        try:
            path = normalize_path(req.path)
        except MalformedPathError:
            self.reply(req, 400)
            return
        match = config.router.match(path, req.method)
        if match is None:
            self.reply(req, 404)
            return
        route, prefix = match
        req.route_label = route.product_version_id
        result: AuthResult | None = None
        if route.strategies:
            try:
                result = await self.auth.authenticate(config, route, req.headers, query)
            except AuthRejectedError as exc:
                req.auth_failure = exc.reason
                req.auth_method = exc.method
                req.app_id = exc.app_id
                self.metrics.auth_failure(route.product_version_id, exc.reason)
                self.reply(req, exc.status, message=exc.message, extra=exc.headers)
                return
            req.auth_method = result.method
            req.app_id = result.app.id
            if route.product_version_id not in result.app.registrations:
                req.auth_failure = "no_registration"
                self.metrics.auth_failure(route.product_version_id, "no_registration")
                self.reply(req, 403)
                return
        elif not route.allow_anonymous:
            req.auth_failure = "no_credential"
            self.metrics.auth_failure(route.product_version_id, "no_credential")
            self.reply(req, 401, extra=[("WWW-Authenticate", 'Bearer realm="keystile"')])
            return
        if req.too_large:
            self.reply(req, 413, close=True)
            return
        await self._proxy(req, route, path, prefix, query, result)

    def _upstream_head(
        self, req: _Request, route: CompiledRoute, path: str, prefix: str, query: bytes, auth: AuthResult | None
    ) -> bytes:
        rest = path[len(prefix) :] if route.strip_path else path
        target = join_upstream_path(route.base_path, rest)
        if query and route.key_params:
            query = _strip_params(query, route.key_params)
        target_b = target.encode("latin-1")
        if query:
            target_b += b"?" + query
        lines = [req.method.encode() + b" " + target_b + b" HTTP/1.1\r\nHost: " + route.host_header + b"\r\n"]
        xff = xfp = xfh = host = None
        chunked = False
        length: bytes | None = None
        skip: frozenset[bytes] = _REQ_DROP
        if auth is not None and auth.drop_headers:
            skip = skip | auth.drop_headers
        if req.h_connection is not None:
            # headers the client's Connection header names are hop-by-hop (RFC 9110 §7.6.1)
            named = [v for (h, _, v) in req.headers if h == b"connection"]
            skip = skip | {t.strip().lower() for v in named for t in v.split(b",")}
        for lname, name, value in req.headers:
            if lname in skip:
                if lname not in _REQ_DROP:
                    continue
                if lname == b"host":
                    host = value
                elif lname == b"x-forwarded-for":
                    xff = value if xff is None else xff + b", " + value
                elif lname == b"x-forwarded-proto":
                    xfp = value
                elif lname == b"x-forwarded-host":
                    xfh = value
                elif lname == b"transfer-encoding":
                    chunked = chunked or b"chunked" in value.lower()
                elif lname == b"content-length":
                    length = value
                continue
            if lname.startswith(b"x-application-"):
                continue
            if lname == b"cookie" and auth is not None and auth.cookie_name is not None:
                value = _strip_cookie(value, auth.cookie_name)
                if not value:
                    continue
            lines.append(name + b": " + value + b"\r\n")
        if auth is not None:
            if auth.upstream_authorization is not None:
                lines.append(b"Authorization: " + auth.upstream_authorization + b"\r\n")
            lines.append(auth.app.identity_headers)
            lines.append(b"X-Credential-Identifier: " + auth.identifier.encode("latin-1", "replace") + b"\r\n")
        proto = req.proto
        trusted = proto.trusted
        if trusted and (xff or xfp):
            peer = proto.peer.encode()
            lines.append(b"X-Forwarded-For: " + ((xff + b", " + peer) if xff else peer) + b"\r\n")
            lines.append(b"X-Forwarded-Proto: " + (xfp or b"http") + b"\r\n")
        else:
            lines.append(proto.forwarded)
        own_host = xfh if trusted and xfh else host
        if own_host:
            lines.append(b"X-Forwarded-Host: " + own_host + b"\r\n")
        lines.append(b"X-Request-Id: " + req.request_id.encode() + b"\r\n")
        if chunked:
            req.body_chunked = True
            lines.append(b"Transfer-Encoding: chunked\r\n")
        elif length is not None:
            lines.append(b"Content-Length: " + length + b"\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _proxy(
        self, req: _Request, route: CompiledRoute, path: str, prefix: str, query: bytes, auth: AuthResult | None
    ) -> None:
        head = self._upstream_head(req, route, path, prefix, query, auth)
        if auth is not None and auth.set_cookie is not None:
            req.set_cookie = auth.set_cookie
        proto = req.proto
        loop = proto.loop
        req.up_started = loop.time()
        try:
            conn = await self.pool.acquire(route.scheme, route.host, route.port, route.connect_timeout)
        except TimeoutError:
            self.reply(req, 504)
            return
        except OSError:
            self.reply(req, 502)
            return
        if proto.closing:
            self.pool.release(conn)
            return
        if req.too_large:  # the body went over the limit while connecting
            self.pool.release(conn)
            self.reply(req, 413, close=True)
            return
        if req.h_expect is not None and not req.body_done:
            proto.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        req.is_head = req.method == "HEAD"
        req.pending = True
        req.conn = conn
        conn.exchange = req
        transport = conn.transport
        assert transport is not None
        if req.body_buf:
            body = b"".join(req.body_buf)
            req.body_buf = []
            if req.body_chunked:
                transport.write(head + b"%x\r\n%s\r\n" % (len(body), body) + (b"0\r\n\r\n" if req.body_done else b""))
            else:
                transport.write(head + body)
        elif req.body_chunked and req.body_done:
            transport.write(head + b"0\r\n\r\n")
        else:
            transport.write(head)
        req.head_sent = True
        proto.resume_reading()
        req.read_timeout = route.read_timeout
        req.last_io = loop.time()
        self.waiting.add(req)


def _strip_params(query: bytes, names: frozenset[str]) -> bytes:
    from urllib.parse import unquote_to_bytes

    kept = []
    for part in query.split(b"&"):
        name = part.split(b"=", 1)[0]
        if unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace") in names:
            continue
        kept.append(part)
    return b"&".join(kept)


def _strip_cookie(value: bytes, cookie_name: str) -> bytes:
    target = cookie_name.encode()
    kept = [c for c in (p.strip() for p in value.split(b";")) if c and c.split(b"=", 1)[0].strip() != target]
    return b"; ".join(kept)
