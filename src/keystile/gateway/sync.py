"""Config sync: long-poll the control plane's feed (contracts/gateway.md §2.1, §2.3).

`GET {control-plane}/v2/data-plane/config?wait=30` with the data-plane token, the current ETag and the node
headers. 200: validate, hand over to `apply` (which builds the tables and swaps), write the last-known-good
file. 304: poll again at once. 401/403, network errors, 5xx: keep serving, retry with exponential backoff
1 s → 30 s and full jitter, log at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from keystile import __version__
from keystile.domain.snapshot import Snapshot, SnapshotError, parse_snapshot
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.state import CONFIG_FILE, write_atomic

__all__ = ["WAIT_SECONDS", "ConfigSync"]

log = logging.getLogger("keystile.gateway.sync")

WAIT_SECONDS = 30
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
LOG_INTERVAL = 60.0


class ConfigSync:
    def __init__(
        self,
        *,
        control_plane: str,
        token: str,
        state_dir: Path,
        node_id: str,
        client: httpx.AsyncClient,
        apply: Callable[[Snapshot], None],
        metrics: GatewayMetrics,
        wait: int = WAIT_SECONDS,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        self._url = control_plane.rstrip("/") + "/v2/data-plane/config"
        self._token = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        self._state_dir = state_dir
        self._client = client
        self._apply = apply
        self._on_written = on_written
        self._metrics = metrics
        self._wait = wait
        self._headers = {
            "X-Keystile-Node-Id": node_id,
            "X-Keystile-Node-Hostname": socket.gethostname(),
            "User-Agent": f"keystile-gateway/{__version__}",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
        }
        self.etag: str | None = None
        self.last_sync_at: float | None = None
        self._last_log = -LOG_INTERVAL

    def start_from(self, version: int) -> None:
        """Poll as a gateway already holding `version` (started from the last-known-good file)."""
        self.etag = f'"{version}"'

    def _complain(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL:
            self._last_log = now
            log.warning(message, *args)

    async def poll_once(self) -> bool:
        """One request; True when the feed answered (200 or 304), False when the caller should back off."""
        headers = dict(self._headers)
        headers["Authorization"] = self._token
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        try:
            response = await self._client.get(
                self._url,
                params={"wait": str(self._wait)},
                headers=headers,
                timeout=httpx.Timeout(10.0, read=self._wait + 15.0),
            )
        except httpx.HTTPError as exc:
            self._complain("config feed %s unreachable (%s); serving the current config", self._url, type(exc).__name__)
            return False
        if response.status_code == 304:
            self.last_sync_at = time.time()
            return True
        if response.status_code != 200:
            self._complain("config feed answered %d; serving the current config", response.status_code)
            return False
        self.last_sync_at = time.time()
        etag = response.headers.get("etag")
        try:
            snapshot = parse_snapshot(response.content)
        except SnapshotError as exc:
            self._metrics.config_rejected += 1
            log.error("config feed sent a snapshot this gateway cannot use; keeping the current one: %s", exc)
            self.etag = etag
            return True
        try:
            self._apply(snapshot)
        except ValueError as exc:
            self._metrics.config_rejected += 1
            log.error("config version %d cannot be served; keeping the current one: %s", snapshot.version, exc)
            self.etag = etag
            return True
        write_atomic(self._state_dir / CONFIG_FILE, response.content)
        if self._on_written is not None:
            self._on_written()  # workers load the file: tell them only once it is there
        self.etag = etag or f'"{snapshot.version}"'
        return True

    async def run(self) -> None:
        """Poll until cancelled."""
        backoff = BACKOFF_START
        while True:
            try:
                answered = await self.poll_once()
            except OSError as exc:  # the state file could not be written: keep serving, keep trying
                log.error("config sync failed: %s", exc)
                answered = False
            if answered:
                backoff = BACKOFF_START
                continue
            await asyncio.sleep(random.uniform(0, backoff))  # noqa: S311 - jitter, not cryptography
            backoff = min(BACKOFF_MAX, backoff * 2)
