"""PostgreSQL restarted while developers create applications: a private PostgreSQL (`initdb`/`pg_ctl` in a temporary
folder, its own port, never the machine's shared one), a real control plane on it and a gateway following it.
Creates in flight during the restart fail with 503 and `Retry-After` (they do not hang); every create answered 201
survives; no create is stored twice; afterwards creates work again (the pool reconnects) and the gateway gets the
next change (the config feed's `LISTEN` is back)."""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing_service
from tests.integration.test_cluster import (
    XRW,
    Cluster,
    _alive,
    _app_ids,
    _free_port,
    _keystile,
    _make_app,
    _ok,
    _seed,
    _serves,
    _sign_up,
    _wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _run_as(user: str | None, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = ["runuser", "-u", user, "--", *args] if user else list(args)
    return subprocess.run(cmd, capture_output=True, timeout=120)


@pytest.fixture
def private_pg() -> Iterator[tuple[int, Path, str | None]]:
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        missing_service("initdb/pg_ctl not installed")
    user: str | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing_service("running as root and no postgres user to run a private PostgreSQL")
        if not shutil.which("runuser"):
            missing_service("running as root without runuser")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="keystile-pg-"))
    if user:
        shutil.chown(root, user)
    data, port = root / "data", _free_port()
    made = _run_as(user, "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    assert made.returncode == 0, made.stderr.decode()[-2000:]
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = _run_as(user, "pg_ctl", "-D", str(data), "-o", opts, "-l", str(root / "pg.log"), "-w", "start")
    assert started.returncode == 0, started.stderr.decode()[-2000:]
    try:
        yield port, data, user
    finally:
        _run_as(user, "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def world(tmp_path: Path, private_pg: tuple[int, Path, str | None]) -> Iterator[Cluster]:
    port = private_pg[0]
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    c = Cluster(root=tmp_path, db_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
    for name in ("cp_a", "gw_a", "st_a", "upstream"):
        c.ports[name] = _free_port()
    (tmp_path / "mail").mkdir()
    c.env = {
        **base,
        "KEYSTILE_DATABASE_URL": c.db_url,
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


def test_postgres_restart_during_writes(world: Cluster, private_pg: tuple[int, Path, str | None]) -> None:
    c, (_, data, user) = world, private_pg
    c.start("upstream", [sys.executable, "-m", "keystile.demo.upstream", "--port", str(c.ports["upstream"])], c.env)
    c.start_cp("cp_a")
    c.wait_http("cp_a", c.url("cp_a") + "/api/v2/portal")
    c.wait_http("upstream", c.url("upstream") + "/hello")
    made = subprocess.run(_keystile("admin", "token", "create", "--name", "p"), env=c.env, capture_output=True)
    assert made.returncode == 0, made.stderr.decode()[-2000:]
    with httpx.Client(
        base_url=c.url("cp_a"), headers={"Authorization": f"Bearer {made.stdout.decode().strip()}"}, timeout=30
    ) as admin:
        facts = _seed(admin, c.url("upstream"))
    args = ["gateway", "--control-plane", c.url("cp_a"), "--listen", f"127.0.0.1:{c.ports['gw_a']}"]
    args += ["--status-listen", f"127.0.0.1:{c.ports['st_a']}", "--state-dir", str(c.root / "gw")]
    c.start("gw_a", _keystile(*args), {**c.env, "KEYSTILE_GATEWAY_TOKEN": facts["dataplane_token"]})
    c.wait_http("gw_a", c.url("st_a") + "/status/ready")

    with httpx.Client(base_url=c.url("cp_a"), headers=XRW, timeout=30) as dev:
        _sign_up(c, dev, f"dev-{uuid.uuid4().hex[:8]}@example.com")
        acknowledged: list[str] = []
        answers: list[int] = []
        stop = threading.Event()

        def create_loop() -> None:
            i = 0
            with httpx.Client(base_url=c.url("cp_a"), headers=XRW, cookies=dev.cookies, timeout=20) as client:
                while not stop.is_set():
                    i += 1
                    try:
                        r = client.post(
                            "/api/v2/applications", json={"name": f"pg-{i}", "auth_strategy_id": facts["strategy"]}
                        )
                    except httpx.HTTPError:
                        answers.append(0)
                        continue
                    answers.append(r.status_code)
                    if r.status_code == 201:
                        acknowledged.append(r.json()["id"])
                    time.sleep(0.02)

        worker = threading.Thread(target=create_loop)
        worker.start()
        try:
            assert _wait_for(lambda: len(acknowledged) >= 5, timeout=30) is not None, answers[-5:]
            before = len(answers)
            log = str(data.parent / "pg.log")  # without -l the server would hold our pipes open
            restarted = _run_as(user, "pg_ctl", "-D", str(data), "-l", log, "-m", "fast", "-w", "restart")
            assert restarted.returncode == 0, restarted.stderr.decode()[-2000:]
            # creates work again after the restart (the pool drops dead connections and reconnects)
            after = len(acknowledged)
            assert _wait_for(lambda: len(acknowledged) >= after + 5, timeout=30) is not None, answers[-10:]
        finally:
            stop.set()
            worker.join(30)
        assert not worker.is_alive()
        during = answers[before:]
        # 503 + Retry-After while the database is away (or the connection drops mid-request: 0), never a bare 500
        assert all(s in (201, 503, 0) for s in during), sorted(set(during))
        visible = _app_ids(dev)
        assert not [a for a in acknowledged if a not in visible], "an acknowledged create was lost"
        names = [_ok(dev.get(f"/api/v2/applications/{a}"), "get")["name"] for a in visible]
        assert len(names) == len(set(names)), "a create was stored twice"
        print(f"{len(acknowledged)} acknowledged; answers while PostgreSQL restarted: {sorted(set(during))}")

        # the config feed's LISTEN is back: the gateway gets the next change
        _, key = _make_app(dev, facts, "after-pg-restart")
        took = _wait_for(_serves(c.url("gw_a"), key), timeout=10)
        assert took is not None, "the gateway never got a change committed after the PostgreSQL restart"
        print(f"gateway served the post-restart app after {took:.2f} s")
