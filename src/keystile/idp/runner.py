"""Running the built-in IdP with uvicorn on a socket bound first, so that port 0 works: the issuer names the
port the kernel picked before the app is built.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from keystile.idp.app import create_idp_app
from keystile.idp.config import IdpConfig, issuer_for

__all__ = ["bind_socket", "run_idp"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (`0` = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run_idp(
    host: str,
    port: int,
    data_dir: Path,
    make_config: Callable[[Path, str], IdpConfig],
    issuer: str | None = None,
    announce: Callable[[Starlette, IdpConfig], None] | None = None,
) -> None:
    """Bind, build the app (`make_config(data_dir, issuer)`), announce it, and serve until interrupted."""
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = make_config(data_dir, issuer or issuer_for(host, bound_port))
    app = create_idp_app(config)
    if announce is not None:
        announce(app, config)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
