"""Raw HTTP/1.1 over a socket, for requests that httpx refuses to build (bytes it validates, oversized heads)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

LIMIT_SECONDS = 5.0


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def send(port: int, head: bytes, body: bytes = b"") -> RawResponse:
    """Send `head` (request line and headers, without the blank line) and `body`; read one response (its
    Content-Length, else to EOF), within LIMIT_SECONDS."""
    async with asyncio.timeout(LIMIT_SECONDS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head + b"\r\n\r\n" + body)
            with contextlib.suppress(ConnectionError):  # the server may answer and close before reading it all
                await writer.drain()
            head_raw = await reader.readuntil(b"\r\n\r\n")
            lines = head_raw[:-4].decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
            length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
            data = await (reader.readexactly(length) if length is not None else reader.read())
        finally:
            writer.close()
    return RawResponse(status, headers, data)
