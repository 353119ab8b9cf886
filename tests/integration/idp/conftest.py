"""Fixtures for the built-in IdP's own integration tests.

`builtin_idp` (the `keystile idp` subprocess) comes from tests/fixtures/builtin_idp.py; `start_idp` runs
`create_idp_app` in this process with uvicorn on a loopback socket (port 0) in a background thread, for tests
that need their own data dir (key rotation, restarts).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from keystile.idp import IdpConfig, IdpFacts, create_idp_app
from keystile.idp.config import issuer_for
from keystile.idp.runner import bind_socket


@dataclass(frozen=True)
class RunningIdp:
    config: IdpConfig
    facts: IdpFacts

    @property
    def issuer(self) -> str:
        return self.config.issuer


@pytest.fixture
def start_idp(tmp_path: Path) -> Iterator[Callable[..., RunningIdp]]:
    """Start an in-process IdP (keyword arguments go to `IdpConfig`); all are stopped at teardown."""
    running: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(**overrides: object) -> RunningIdp:
        sock = bind_socket("127.0.0.1", 0)
        config = IdpConfig(
            data_dir=overrides.pop("data_dir", tmp_path / "idp"),  # type: ignore[arg-type]
            issuer=issuer_for("127.0.0.1", sock.getsockname()[1]),
            **overrides,  # type: ignore[arg-type]
        )
        app = create_idp_app(config)
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the in-process IdP did not start")
            time.sleep(0.01)
        return RunningIdp(config=config, facts=app.state.idp_facts)

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
