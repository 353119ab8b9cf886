"""The JSON access log (contracts/gateway.md §7): one line per request on stdout.

Fields are fixed; none of them can carry `Authorization`, cookies, keys, tokens, query strings or bodies
(the path is logged without its query). Lines are buffered and flushed every 200 ms or every 256 lines.
"""

from __future__ import annotations

import json.encoder
import sys
import time
from typing import IO

__all__ = ["AccessLog"]

_quote = json.encoder.encode_basestring_ascii  # the C string encoder of json.dumps
_FLUSH_LINES = 256
_FLUSH_SECONDS = 0.2


class AccessLog:
    def __init__(self, stream: IO[bytes] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._lines: list[str] = []
        self._enabled = enabled
        self._last_flush = time.time()
        self._sec = -1
        self._sec_text = ""

    def _ts(self, now: float) -> str:
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._sec_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._sec_text}.{int((now - sec) * 1000):03d}Z"

    def write(
        self,
        *,
        request_id: str,
        client_ip: str,
        method: str,
        path: str,
        route: str,
        status: int,
        bytes_in: int,
        bytes_out: int,
        duration: float,
        upstream_status: int | None,
        upstream_duration: float | None,
        application_id: str | None,
        auth_method: str | None,
        auth_failure: str | None,
        config_version: int | None,
        user_agent: bytes | None,
    ) -> None:
        if not self._enabled:
            return
        now = time.time()
        q = _quote
        line = (
            f'{{"ts":"{self._ts(now)}","request_id":{q(request_id)},"client_ip":{q(client_ip)},'
            f'"method":{q(method)},"path":{q(path)},"route":{q(route) if route else "null"},"status":{status},'
            f'"bytes_in":{bytes_in},"bytes_out":{bytes_out},"duration_ms":{duration * 1000:.3f},'
            f'"upstream_status":{upstream_status if upstream_status is not None else "null"},'
            f'"upstream_duration_ms":{f"{upstream_duration * 1000:.3f}" if upstream_duration is not None else "null"},'
            f'"application_id":{q(application_id) if application_id else "null"},'
            f'"auth_method":{q(auth_method) if auth_method else "null"},'
            f'"auth_failure":{q(auth_failure) if auth_failure else "null"},'
            f'"config_version":{config_version if config_version is not None else "null"},'
            f'"user_agent":{q(user_agent.decode("latin-1")) if user_agent is not None else "null"}}}'
        )
        self._lines.append(line)
        if len(self._lines) >= _FLUSH_LINES or now - self._last_flush >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.time()
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode()
        self._lines = []
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):
            self._enabled = False
