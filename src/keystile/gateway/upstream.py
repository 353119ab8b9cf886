"""Keep-alive connection pools to upstreams (contracts/gateway.md §4): asyncio Protocol + httptools.

A connection carries one exchange at a time. The exchange (the request being proxied, `server._Request`)
receives the parser events and streams the answer to its client; when the response ends cleanly and both
sides allow it, the connection goes back to its pool. No retries.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Protocol, cast

import httptools

from keystile.gateway.eager import in_task

__all__ = ["Exchange", "UpstreamConnection", "UpstreamPool"]

MAX_IDLE_PER_UPSTREAM = 512
IDLE_TIMEOUT = 55.0


class Exchange(Protocol):
    """What a connection reports to the request it serves."""

    def up_status(self, reason: bytes) -> None: ...
    def up_headers_complete(self, parser: Any, headers: list[tuple[bytes, bytes]]) -> None: ...
    def up_body(self, data: bytes) -> None: ...
    def up_message_complete(self, parser: Any) -> None: ...
    def up_lost(self) -> None: ...
    def up_invalid(self) -> None: ...
    def flush(self) -> None: ...
    def up_pause(self) -> None: ...
    def up_resume(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = ("closed", "exchange", "headers", "idle_since", "key", "parser", "pool", "transport")

    def __init__(self, pool: UpstreamPool, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:
            # An idle connection must not talk; whatever it is, it is not reusable.
            self.close()
            return
        ex = self.exchange
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.exchange = None
            self.close()
            ex.up_invalid()
            return
        ex.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        self.exchange = None
        if ex is not None:
            ex.up_lost()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.up_pause()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.up_resume()

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        if self.exchange is not None:
            self.exchange.up_status(reason)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers = self.headers
        self.headers = []
        if self.exchange is not None:
            self.exchange.up_headers_complete(self.parser, headers)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.up_body(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.up_message_complete(self.parser)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.exchange = None
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Idle connections per (scheme, host, port), newest first."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[UpstreamConnection]] = {}
        self._ssl = ssl_context

    async def acquire(self, scheme: str, host: str, port: int, connect_timeout: float) -> UpstreamConnection:
        """An idle connection, or a new one within `connect_timeout`.

        Raises:
            TimeoutError: connecting took too long.
            OSError: the upstream refused or is unreachable.
        """
        key = (scheme, host, port)
        idle = self._idle.get(key)
        if idle:
            loop_time = asyncio.get_running_loop().time()
            while idle:
                conn = idle.pop()
                if not conn.closed and loop_time - conn.idle_since < IDLE_TIMEOUT:
                    return conn
                conn.close()
        await in_task()  # connecting uses asyncio.timeout, which needs a task
        loop = asyncio.get_running_loop()
        ssl_ctx: ssl.SSLContext | bool | None = None
        if scheme == "https":
            ssl_ctx = self._ssl or ssl.create_default_context()
        async with asyncio.timeout(connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: UpstreamConnection(self, key),
                host,
                port,
                ssl=ssl_ctx,
                server_hostname=host if ssl_ctx else None,
            )
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        """Put a connection whose exchange ended cleanly back."""
        conn.exchange = None
        if conn.closed:
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= MAX_IDLE_PER_UPSTREAM:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle.append(conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
