"""Composition of the data plane: one `GatewayNode` per process, and `run()` for the CLI.

Roles: `single` (one process: serves, syncs, status port), `supervisor` (with `--workers N`: syncs the feed,
writes the last-known-good file, signals the workers, serves the status port with their merged metrics),
`worker` (serves; loads each snapshot from the state file, or the `--config` file, on SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import httpx
from aiohttp import web

from keystile.domain.snapshot import Snapshot, SnapshotError, parse_snapshot
from keystile.gateway.accesslog import AccessLog
from keystile.gateway.auth import Authenticator
from keystile.gateway.idp import IdpClient
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.server import Gateway, ServerOptions
from keystile.gateway.shared import SharedTokens
from keystile.gateway.state import CONFIG_FILE, node_id, read_last_known_good, write_atomic
from keystile.gateway.status import build_status_app
from keystile.gateway.sync import ConfigSync
from keystile.gateway.tables import ConfigSource, build_config
from keystile.gateway.upstream import UpstreamPool

__all__ = ["GatewayNode", "GatewayOptions", "Role", "run"]

log = logging.getLogger("keystile.gateway")

Role = Literal["single", "supervisor", "worker"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class GatewayOptions:
    control_plane: str | None = None
    token: str | None = None
    config_file: Path | None = None
    listen: tuple[str, int] = ("0.0.0.0", 8000)  # noqa: S104 - the proxy port is meant to be reachable
    status_listen: tuple[str, int] = ("127.0.0.1", 8100)
    workers: int = 1
    state_dir: Path = Path("keystile-gateway")
    trusted_proxies: list[Network] = field(default_factory=list)
    max_body_size: int = 10 * 1024 * 1024
    insecure_cookies: bool = False
    ca_file: Path | None = None
    metrics_no_app_label: bool = False
    redis_url: str | None = None
    access_log: bool = True
    sync_wait: int = 30


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


def load_file(path: Path) -> Snapshot:
    """Read a `--config` file (JSON or YAML).

    Raises:
        SnapshotError: unreadable or invalid, with every validation error.
    """
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise SnapshotError([f"cannot read {path}: {exc.strerror}"]) from exc
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s is readable by other users; it may hold session secrets (chmod 600)", path)
    fmt: Literal["json", "yaml", "auto"] = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "auto"
    return parse_snapshot(raw, fmt)


def check_file(path: Path) -> None:
    """Everything `--config` start-up refuses: unreadable, invalid schema, or tables that cannot be built.

    Raises:
        SnapshotError: with every problem found.
    """
    snapshot = load_file(path)
    try:
        build_config(snapshot, "file")
    except ValueError as exc:
        raise SnapshotError([f"routes: {exc}"]) from exc


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class GatewayNode:
    """Everything one gateway process runs; `start()` / `stop()` (tests run it in-process on port 0)."""

    def __init__(
        self,
        options: GatewayOptions,
        *,
        role: Role = "single",
        access_log_stream: IO[bytes] | None = None,
        manage_memory: bool = False,
    ) -> None:
        """`manage_memory`: after each config swap, collect, trim the heap and freeze the tables out of the
        cyclic GC (process-wide effects: only for a process that is nothing but this gateway, as `run()`)."""
        self.options = options
        self.role = role
        self._manage_memory = manage_memory
        self.metrics = GatewayMetrics(app_label=not options.metrics_no_app_label)
        self._access_log = AccessLog(access_log_stream, enabled=options.access_log)
        self._ssl = _ssl_context(options.ca_file)
        self._client: httpx.AsyncClient | None = None
        self._shared: SharedTokens | None = None
        self.gateway: Gateway | None = None
        self.sync: ConfigSync | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._status_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self.proxy_port = 0
        self.status_port = 0
        self.config_source: ConfigSource | None = None
        self.config_version: int | None = None
        self.worker_pids: list[int] = []
        self._file_mtime = 0.0
        self._counts: tuple[int, int] | None = None
        self._stopped = asyncio.Event()

    # -- config ------------------------------------------------------------------------------------------
    def apply(self, snapshot: Snapshot, source: ConfigSource) -> None:
        """Build the tables off the request path and swap them in."""
        config = build_config(snapshot, source)
        self.config_source = source
        self.config_version = snapshot.version
        self._counts = (len(config.routes), len(config.apps))
        self.metrics.config_loaded(snapshot.version)
        if self.gateway is not None:
            self.gateway.swap(config)
        if self.role == "supervisor" and source != "control_plane":
            self._signal_workers()  # feed snapshots are signalled once written (ConfigSync.on_written)
        log.info("config version %d loaded (%s)", snapshot.version, source)
        if self._manage_memory:
            asyncio.get_running_loop().call_soon(_release_memory)  # once the caller has let go of the models

    def _apply_from_feed(self, snapshot: Snapshot) -> None:
        self.apply(snapshot, "control_plane")

    def _config_path(self) -> Path:
        if self.options.config_file is not None:
            return self.options.config_file
        return self.options.state_dir / CONFIG_FILE

    def reload(self) -> bool:
        """Re-read the config file (file mode; or, for a worker, the state file). False keeps the running one."""
        path = self._config_path()
        try:
            self._file_mtime = path.stat().st_mtime
            snapshot = load_file(path)
            self.apply(snapshot, self._reload_source())
        except (OSError, ValueError) as exc:  # SnapshotError, or a route path build_config refuses
            self.metrics.config_rejected += 1
            log.error("reload of %s refused, keeping config version %s: %s", path, self.config_version, exc)
            return False
        return True

    def _reload_source(self) -> ConfigSource:
        if self.options.config_file is not None:
            return "file"
        return "last_known_good" if self.config_version is None else "control_plane"

    def _signal_workers(self) -> None:
        for pid in self.worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind, load the config, start sync and the status port.

        Raises:
            SnapshotError: `--config` mode with an invalid file.
        """
        opts = self.options
        loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(
            verify=self._ssl, timeout=httpx.Timeout(10.0, connect=2.0), follow_redirects=False, trust_env=False
        )
        if self.role != "supervisor":
            idp = IdpClient(self._client, self.metrics)
            if opts.redis_url:
                self._shared = SharedTokens(opts.redis_url, self.metrics)
            authenticator = Authenticator(
                idp, self.metrics, insecure_cookies=opts.insecure_cookies, shared=self._shared
            )
            self.gateway = Gateway(
                options=ServerOptions(
                    max_body_size=opts.max_body_size,
                    trusted_proxies=opts.trusted_proxies,
                    insecure_cookies=opts.insecure_cookies,
                ),
                authenticator=authenticator,
                metrics=self.metrics,
                access_log=self._access_log,
                pool=UpstreamPool(self._ssl),
            )
        # the config first: an invalid --config file stops start-up before anything listens
        if opts.config_file is not None:
            self.apply(load_file(opts.config_file), "file")
            self._file_mtime = opts.config_file.stat().st_mtime
        elif self.role == "worker":
            if self._config_path().exists():
                self.reload()
        else:
            raw = read_last_known_good(opts.state_dir)
            if raw is not None:
                try:
                    self.apply(parse_snapshot(raw), "last_known_good")
                except SnapshotError as exc:
                    log.error("the last-known-good file cannot be used: %s", exc)
        if self.gateway is not None:
            sock = bind_socket(*opts.listen, reuse_port=opts.workers > 1)
            server = await self.gateway.start(sock)
            self.proxy_port = server.sockets[0].getsockname()[1]
        if self.role == "worker":
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            self._timers.append(loop.call_later(1.0, self._worker_tick))
        else:
            await self._start_status()
            if opts.config_file is None:
                assert opts.control_plane is not None
                assert opts.token is not None
                self.sync = ConfigSync(
                    control_plane=opts.control_plane,
                    token=opts.token,
                    state_dir=opts.state_dir,
                    node_id=node_id(opts.state_dir),
                    client=self._client,
                    apply=self._apply_from_feed,
                    metrics=self.metrics,
                    wait=opts.sync_wait,
                    on_written=self._signal_workers if self.role == "supervisor" else None,
                )
                if self.config_version is not None:
                    self.sync.start_from(self.config_version)
                self._sync_task = loop.create_task(self.sync.run())
        self._timers.append(loop.call_later(0.2, self._flush_tick))

    def _flush_tick(self) -> None:
        self._access_log.flush()
        self._timers.append(asyncio.get_running_loop().call_later(0.2, self._flush_tick))
        if len(self._timers) > 16:
            self._timers = [t for t in self._timers if not t.cancelled()][-4:]

    def _worker_tick(self) -> None:
        """Each second: publish this worker's counters; pick up a state file missed by a signal."""
        loop = asyncio.get_running_loop()
        workers_dir = self.options.state_dir / "workers"
        with contextlib.suppress(OSError):
            write_atomic(workers_dir / f"{os.getpid()}.json", json.dumps(self.metrics.dump()).encode())
        with contextlib.suppress(OSError):
            if self._config_path().stat().st_mtime != self._file_mtime:
                self.reload()
        self._timers.append(loop.call_later(1.0, self._worker_tick))

    def merged_metrics(self) -> GatewayMetrics:
        if self.role != "supervisor":
            return self.metrics
        dumps = []
        for pid in self.worker_pids:
            with contextlib.suppress(OSError, ValueError):
                dumps.append(json.loads((self.options.state_dir / "workers" / f"{pid}.json").read_bytes()))
        return GatewayMetrics.merged(self.metrics, dumps)

    def status_info(self) -> dict[str, Any]:
        snapshot_routes, snapshot_apps = self._counts if self._counts is not None else (None, None)
        return {
            "config_version": self.config_version,
            "config_source": self.config_source,
            "last_sync_at": self.sync.last_sync_at if self.sync is not None else None,
            "routes": snapshot_routes,
            "applications": snapshot_apps,
            "workers": max(1, len(self.worker_pids)),
            # Redis shared token cache: off, or its state in this process (the supervisor's workers hold it)
            "shared_cache": None
            if not self.options.redis_url
            else (self._shared.state if self._shared is not None else "workers"),
        }

    async def _start_status(self) -> None:
        app = build_status_app(self.merged_metrics, self.status_info)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.options.status_listen[0], self.options.status_listen[1])
        await site.start()
        self._status_runner = runner
        self.status_port = runner.addresses[0][1]

    async def stop(self, grace: float = 30.0) -> None:
        """Graceful stop: no new connections, requests in flight finish (≤ `grace` s)."""
        for timer in self._timers:
            timer.cancel()
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        if self.gateway is not None:
            await self.gateway.shutdown(grace)
        if self._status_runner is not None:
            await self._status_runner.cleanup()
        if self._client is not None:
            await self._client.aclose()
        if self._shared is not None:
            await self._shared.close()
        self._access_log.flush()
        self._stopped.set()

    async def serve_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if self.role != "worker" and self.options.config_file is not None:
            loop.add_signal_handler(signal.SIGHUP, self._sighup_file)
        await stop.wait()
        log.info("stopping: finishing requests in flight")
        for pid in self.worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        await self.stop()

    def _sighup_file(self) -> None:
        self.reload()  # the supervisor signals its workers from apply()


def _release_memory() -> None:
    """Give the parse's garbage back to the OS (a 100,000-application snapshot is ~35 MB of JSON), and keep the
    new tables out of the cyclic collector's way: its full collections would otherwise walk millions of
    long-lived objects in the middle of requests (latency spikes)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _main(options: GatewayOptions, role: Role, worker_pids: list[int]) -> None:
    node = GatewayNode(options, role=role, manage_memory=True)
    node.worker_pids = worker_pids
    await node.start()
    if role != "worker":
        log.info(
            "gateway listening on %s:%d, status on %s:%d",
            *options.listen[:1],
            node.proxy_port,
            options.status_listen[0],
            node.status_port,
        )
    await node.serve_until_signalled()


def run(options: GatewayOptions) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the exit code."""
    import uvloop

    _setup_logging()
    if options.config_file is not None:
        try:
            check_file(options.config_file)
        except SnapshotError as exc:
            for error in exc.errors:
                print(f"invalid config: {error}", file=sys.stderr)
            return 1
    if options.workers <= 1:
        uvloop.run(_main(options, "single", []))
        return 0
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a worker must not die of a SIGHUP before its handler is set
    options.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pids: list[int] = []
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                uvloop.run(_main(options, "worker", []))
            except BaseException:
                log.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    try:
        uvloop.run(_main(options, "supervisor", pids))
    finally:
        deadline = time.monotonic() + 35
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                while time.monotonic() < deadline:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done:
                        break
                    time.sleep(0.05)
    return 0
