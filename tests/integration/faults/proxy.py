"""A small fault proxy on loopback: an asyncio TCP proxy that passes bytes through, or adds latency, resets
connections, or answers an HTTP 5xx / 429 (with Retry-After) itself. It runs its own event loop in a thread so
tests driving real subprocesses can use it; `set_mode` also cuts the connections already open, so a held long poll
meets the new fault at once. Latency delays every chunk both ways, or with `latency_on="answer"` only the answer:
the request reaches the upstream at once and is carried out there, but its answer comes late (a lost answer).
A reset comes as soon as the connection is accepted, or with `reset_on="request"` once the request head has come
in (never passed on): the client has sent its request and cannot know whether it arrived.
`opened` records when each connection arrived and under which mode (for spacing checks such as Retry-After)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import Counter
from typing import Literal

__all__ = ["FaultProxy", "LatencyOn", "Mode", "ResetOn"]

Mode = Literal["pass", "latency", "reset", "5xx", "429"]
LatencyOn = Literal["both", "answer"]
ResetOn = Literal["accept", "request"]


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: Mode = "pass"
        self.latency = 0.0
        self.latency_on: LatencyOn = "both"
        self.reset_on: ResetOn = "accept"
        self.status = 503
        self.retry_after = 1
        self.seen: Counter[str] = Counter()  # connections handled per mode
        self.opened: list[tuple[float, Mode]] = []  # (time.monotonic(), mode) of each connection, in order
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._open: set[asyncio.StreamWriter] = set()

    # lifecycle (called from the test's thread)
    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def set_mode(
        self,
        mode: Mode,
        *,
        latency: float = 0.0,
        status: int = 503,
        retry_after: int = 1,
        latency_on: LatencyOn = "both",
        reset_on: ResetOn = "accept",
    ) -> None:
        """Switch the fault and cut every connection already open (they were made under the old mode)."""

        async def switch() -> None:
            self.mode, self.latency, self.status, self.retry_after = mode, latency, status, retry_after
            self.latency_on, self.reset_on = latency_on, reset_on
            for writer in list(self._open):
                self._reset(writer)

        asyncio.run_coroutine_threadsafe(switch(), self._loop).result(10)

    # inside the loop
    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            self._reset(writer)

    def _reset(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        writer.transport.abort()
        self._open.discard(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        self.seen[mode] += 1
        self.opened.append((time.monotonic(), mode))
        self._open.add(writer)
        try:
            if mode == "reset":
                if self.reset_on == "request":
                    with contextlib.suppress(asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                self._reset(writer)
                return
            if mode in ("5xx", "429"):
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                status = 429 if mode == "429" else self.status
                body = b'{"message": "injected fault"}'
                head = f"HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\n"
                head += f"content-length: {len(body)}\r\nconnection: close\r\n"
                if mode == "429":
                    head += f"retry-after: {self.retry_after}\r\n"
                writer.write(head.encode() + b"\r\n" + body)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                writer.close()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                self._reset(writer)
                return
            self._open.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer, answer=True))
        finally:
            self._open.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answer: bool = False) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.mode == "latency" and self.latency and (answer or self.latency_on == "both"):
                    await asyncio.sleep(self.latency)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._open.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
