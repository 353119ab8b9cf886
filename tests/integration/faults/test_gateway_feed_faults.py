"""Faults between a real gateway and a real control plane (both subprocesses), injected by the loopback fault proxy:
latency, connection resets, a 5xx burst and 429 with Retry-After on the config feed. During each fault the gateway
keeps serving the applications it knows (every request answered 200); after the fault stops it picks up the change
made meanwhile; the change is applied once (the application is served, the version only grows)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.faults.proxy import FaultProxy, Mode
from tests.integration.test_cluster import (
    XRW,
    Cluster,
    _alive,
    _free_port,
    _keystile,
    _make_app,
    _seed,
    _serves,
    _sign_up,
    _wait_for,
)

pytestmark = pytest.mark.slow

FAULT_S = 2.5  # how long each fault lasts
RECOVER_S = 20.0  # the gateway's backoff is 1 s doubling with full jitter; a few short faults stay well below this


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Cluster]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    c = Cluster(root=tmp_path, db_url="")
    for port in ("cp_a", "gw_a", "st_a", "upstream"):
        c.ports[port] = _free_port()
    (tmp_path / "mail").mkdir()
    c.env = {
        **base,
        "KEYSTILE_DATA_DIR": str(tmp_path / "cp-data"),
        "KEYSTILE_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
        "KEYSTILE_PUBLIC_URL": c.url("cp_a"),
        "KEYSTILE_MAIL_OUTBOX": str(tmp_path / "mail"),
        "KEYSTILE_LOG_FORMAT": "json",
    }
    try:
        yield c
    finally:
        pids = [p.pid for p in c.procs.values()]
        c.stop_all()
        assert not [pid for pid in pids if _alive(pid)], "stray processes"


def test_gateway_rides_out_feed_faults(world: Cluster) -> None:
    c = world
    c.start("upstream", [sys.executable, "-m", "keystile.demo.upstream", "--port", str(c.ports["upstream"])], c.env)
    c.start_cp("cp_a")
    c.wait_http("cp_a", c.url("cp_a") + "/api/v2/portal")
    c.wait_http("upstream", c.url("upstream") + "/hello")
    made = subprocess.run(_keystile("admin", "token", "create", "--name", "f"), env=c.env, capture_output=True)
    assert made.returncode == 0, made.stderr.decode()[-2000:]
    with httpx.Client(
        base_url=c.url("cp_a"), headers={"Authorization": f"Bearer {made.stdout.decode().strip()}"}, timeout=30
    ) as admin:
        facts = _seed(admin, c.url("upstream"))

    proxy = FaultProxy(c.ports["cp_a"]).start()
    try:
        args = ["gateway", "--control-plane", f"http://127.0.0.1:{proxy.port}"]
        args += ["--listen", f"127.0.0.1:{c.ports['gw_a']}", "--status-listen", f"127.0.0.1:{c.ports['st_a']}"]
        args += ["--state-dir", str(c.root / "gw")]
        c.start("gw_a", _keystile(*args), {**c.env, "KEYSTILE_GATEWAY_TOKEN": facts["dataplane_token"]})
        c.wait_http("gw_a", c.url("st_a") + "/status/ready")
        with httpx.Client(base_url=c.url("cp_a"), headers=XRW, timeout=30) as dev:
            _sign_up(c, dev, f"dev-{uuid.uuid4().hex[:8]}@example.com")
            _, known = _make_app(dev, facts, "known")
            assert _wait_for(_serves(c.url("gw_a"), known), timeout=2.0) is not None

            faults: list[tuple[Mode, dict[str, float | int]]] = [
                ("latency", {"latency": 1.5}),
                ("reset", {}),
                ("5xx", {"status": 503}),
                ("5xx", {"status": 500}),
                ("429", {"retry_after": 2}),
            ]
            versions: list[int] = []
            for mode, options in faults:
                seen_before = proxy.seen[mode]
                answered: list[int] = []
                stop = threading.Event()

                def traffic(key: str = known, out: list[int] = answered, halt: threading.Event = stop) -> None:
                    with httpx.Client(base_url=c.url("gw_a"), timeout=5) as gw:
                        while not halt.is_set():
                            try:
                                out.append(gw.get("/echo/hello", headers={"apikey": key}).status_code)
                            except httpx.HTTPError:
                                out.append(0)
                            time.sleep(0.02)

                runner = threading.Thread(target=traffic)
                runner.start()
                try:
                    proxy.set_mode(mode, **options)  # type: ignore[arg-type]
                    _, fresh = _make_app(dev, facts, f"during-{mode}-{len(versions)}")  # made while the feed is faulty
                    time.sleep(FAULT_S)
                    assert proxy.seen[mode] > seen_before, f"the gateway never met the {mode} fault"
                    proxy.set_mode("pass")
                    took = _wait_for(_serves(c.url("gw_a"), fresh), timeout=RECOVER_S)
                finally:
                    stop.set()
                    runner.join(10)
                assert took is not None, f"after {mode} the gateway never picked up the change made during it"
                assert answered and all(s == 200 for s in answered), f"{mode}: {[s for s in answered if s != 200]}"
                versions.append(httpx.get(c.url("st_a") + "/status", timeout=5).json()["config_version"])
            assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
    finally:
        proxy.stop()
