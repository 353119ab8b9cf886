"""Page session renewal: one refresh per refresh token, shared by the requests that present it together.

A browser that comes back after the hourly access token expired often sends several page requests at once with the
same cookies (a restored session with several portal tabs, links opened in new tabs). The refresh token rotates on
use and presenting a rotated one ends every session of the developer (portal-api.md §1), so refreshing once per
request would sign the developer out everywhere. `Renewals` runs `services.developers.refresh` once per refresh
token in this process and hands the same new tokens to every request that presented that token within
`window` seconds. Several control-plane replicas do not share this: requests racing on different replicas still
meet the reuse rule.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

from keystile.services.developers import SessionTokens

__all__ = ["Renewals"]


class Renewals:
    """Single-flight refreshes keyed by the SHA-256 of the refresh token (the tokens themselves are not keys)."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._done: dict[str, tuple[float, SessionTokens]] = {}

    def _recent(self, key: str) -> SessionTokens | None:
        now = self.clock()
        for old in [k for k, (until, _) in self._done.items() if until <= now]:
            del self._done[old]
        hit = self._done.get(key)
        return hit[1] if hit else None

    async def renew(
        self, portal_id: str, refresh_token: str, refresh: Callable[[], Awaitable[SessionTokens]]
    ) -> SessionTokens:
        """`refresh()`'s tokens, or those of a refresh of the same token that ran (or runs) within the window.

        Raises:
            whatever `refresh` raises (AuthenticationError for a missing, expired or reused token); a failure is not
            remembered, so the next request tries again.
        """
        key = hashlib.sha256(f"{portal_id}|{refresh_token}".encode()).hexdigest()
        hit = self._recent(key)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                hit = self._recent(key)
                if hit is not None:
                    return hit
                tokens = await refresh()
                self._done[key] = (self.clock() + self.window, tokens)
                return tokens
        finally:
            if not lock.locked():
                self._locks.pop(key, None)
