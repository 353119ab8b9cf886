"""`keystile gateway` as a real process: --workers, SIGHUP reload, graceful SIGTERM, invalid config at start-up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.gateway.conftest import PV_A, World

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(status_port: int, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{status_port}/status/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the gateway never became ready")


def _spawn(tmp_path, config, *extra: str, env: dict[str, str] | None = None):
    """Start `python -m keystile.gateway gateway` with `--config FILE` (or, config None, the given options)."""
    port, status = _free_port(), _free_port()
    source = ["--config", str(config)] if config is not None else []
    with (tmp_path / "stderr.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keystile.gateway", "gateway", *source, "--listen", f"127.0.0.1:{port}",
             "--status-listen", f"127.0.0.1:{status}", "--state-dir", str(tmp_path / "state"), *extra],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    return proc, port, status


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


async def test_workers_reload_and_graceful_stop(world: World, tmp_path) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    config = tmp_path / "config.json"
    config.write_text(json.dumps(world.build()))
    config.chmod(0o600)
    proc, port, status = _spawn(tmp_path, config, "--workers", "2")
    try:
        await _wait_ready(status)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answers = [await client.get("/a/x", headers={"apikey": "k-secret"}) for _ in range(20)]
            assert {a.status_code for a in answers} == {200}
            info = (await client.get(f"http://127.0.0.1:{status}/status")).json()
            assert (info["workers"], info["config_version"], info["config_source"]) == (2, 1, "file")
            assert (info["routes"], info["applications"]) == (2, 1)
            # the supervisor's status port shows the workers' counters (published every second)
            await asyncio.sleep(1.5)
            metrics = (await client.get(f"http://127.0.0.1:{status}/metrics")).text
            line = next(
                m for m in metrics.splitlines() if m.startswith("keystile_gateway_requests_total{") and "app-key" in m
            )
            assert line.endswith(" 20.0")
            # SIGHUP: both workers serve the new file within 2 s
            world.version = 2
            world.registrations["app-key"] = []
            config.write_text(json.dumps(world.build()))
            os.kill(proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 2.0
            while True:
                statuses = {(await client.get("/a/x", headers={"apikey": "k-secret"})).status_code for _ in range(10)}
                if statuses == {403}:
                    break
                assert time.monotonic() < deadline, statuses
                await asyncio.sleep(0.05)
    finally:
        assert _stop(proc) == 0


async def test_sigterm_finishes_requests_in_flight(world: World, tmp_path) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    config = tmp_path / "config.json"
    config.write_text(json.dumps(world.build()))
    config.chmod(0o600)
    proc, port, status = _spawn(tmp_path, config)
    try:
        await _wait_ready(status)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            in_flight = asyncio.ensure_future(client.get("/a/delay", headers={"apikey": "k-secret"}))
            await asyncio.sleep(0.4)
            os.kill(proc.pid, signal.SIGTERM)
            answer = await in_flight
            assert answer.status_code == 200
        assert await asyncio.to_thread(proc.wait, 10) == 0
        async with httpx.AsyncClient() as fresh:
            with pytest.raises(httpx.ConnectError):
                await fresh.get(f"http://127.0.0.1:{port}/a/x", timeout=2)
    finally:
        _stop(proc)


def test_invalid_config_stops_start_up(tmp_path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("format_version: 1\nversion: x\nroutes: []\n")
    proc = subprocess.run(
        [sys.executable, "-m", "keystile.gateway", "gateway", "--config", str(config), "--listen", "127.0.0.1:0",
         "--status-listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "invalid config: version:" in proc.stderr
    assert "invalid config: generated_at: Field required" in proc.stderr


async def test_workers_follow_the_feed_through_the_supervisor(world: World, tmp_path) -> None:
    from tests.integration.gateway.servers import FakeFeed

    token = "kdp_" + "w" * 43
    feed = FakeFeed(token)
    await feed.start()
    world.key_app("app-key", "k-secret", [PV_A])
    feed.publish(world.build())
    proc, port, status = _spawn(
        tmp_path, None, "--control-plane", feed.url, "--workers", "2", env={"KEYSTILE_GATEWAY_TOKEN": token}
    )
    try:
        await _wait_ready(status)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 5
            while {(await client.get("/a/x", headers={"apikey": "k-secret"})).status_code for _ in range(6)} != {200}:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            info = (await client.get(f"http://127.0.0.1:{status}/status")).json()
            assert (info["workers"], info["config_version"], info["config_source"]) == (2, 1, "control_plane")
            world.version = 2
            world.registrations["app-key"] = []
            feed.publish(world.build())
            deadline = time.monotonic() + 2.0
            while {(await client.get("/a/x", headers={"apikey": "k-secret"})).status_code for _ in range(6)} != {403}:
                assert time.monotonic() < deadline, "the change did not reach both workers within 2 s"
                await asyncio.sleep(0.05)
        assert all(r["Authorization"] == f"Bearer {token}" for r in feed.requests)
        assert len({r["X-Keystile-Node-Id"] for r in feed.requests}) == 1  # one long poll per node
    finally:
        assert _stop(proc) == 0
        await feed.stop()
