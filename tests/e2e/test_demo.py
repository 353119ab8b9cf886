"""`keystile demo` end to end: run it as a user does, follow the printed walkthrough over HTTP (sign in, create an
app, register it, call the gateway with Basic, with a bearer token, with the session cookie; an API key app
waiting for approval), then stop it and check that no process is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

XRW = {"X-Requested-With": "tests"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not running anymore
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_demo_walkthrough_and_clean_stop(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "keystile.cli", "demo", "--free-ports", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    printed: list[str] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < 120:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line)
            if "Stop everything with Ctrl-C." in line:
                break
        text = "".join(printed)
        assert "Stop everything with Ctrl-C." in text, text
        facts = json.loads((data / "demo.json").read_text())
        portal, gateway = facts["urls"]["portal"], facts["urls"]["gateway"]
        assert f"{portal}/api/v2/developer/authenticate" in text
        assert f"{gateway}/echo/v1/hello" in text
        assert facts["admin_token"] in text
        assert list((data / "mail").glob("*.eml")), "the sign-up mail lands in the mail folder"

        with httpx.Client(base_url=portal, headers=XRW, timeout=30) as dev:
            r = dev.post(
                "/api/v2/developer/authenticate",
                json={"username": facts["developer"]["email"], "password": facts["developer"]["password"]},
            )
            assert r.status_code == 204, r.text
            r = dev.post(
                "/api/v2/applications",
                json={"name": "my-app", "auth_strategy_id": facts["strategies"]["openid_connect"]},
            )
            assert r.status_code == 201, r.text
            app = r.json()
            client_id, secret = app["credentials"]["client_id"], app["credentials"]["client_secret"]
            r = dev.post(
                f"/api/v2/applications/{app['id']}/registrations",
                json={"product_version_id": facts["product_versions"]["v1"]},
            )
            assert r.status_code == 201
            assert r.json()["status"] == "approved"

            with httpx.Client(base_url=gateway, timeout=30) as gw:
                basic = {"Authorization": f"Basic {client_id}:{secret}"}
                # the new application reaches the gateway through the config feed (within about a second)
                assert _wait_for(lambda: gw.get("/echo/v1/hello", headers=basic).status_code == 200, timeout=2.5)
                ok = gw.get("/echo/v1/hello", headers=basic)
                assert ok.status_code == 200, ok.text
                assert ok.json()["application"]["x-application-id"] == app["id"]
                session = ok.cookies.get("session")
                assert session, "the strategy enables session: a cookie follows a successful exchange"
                r = gw.get("/echo/v1/hello", headers={"Authorization": f"Basic {client_id}:wrong"})
                assert r.status_code == 401
                token = httpx.post(
                    facts["idp"]["token_endpoint"],
                    auth=(client_id, secret),
                    data={"grant_type": "client_credentials", "scope": "read"},
                ).json()["access_token"]
                r = gw.get("/echo/v1/hello", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200
                with httpx.Client(base_url=gateway, cookies={"session": session}, timeout=30) as browser:
                    r = browser.get("/echo/v1/hello")  # the session cookie alone
                assert r.status_code == 200
                assert r.json()["application"]["x-application-id"] == app["id"]

                # an API-key app on v2, which needs an admin's approval
                r = dev.post(
                    "/api/v2/applications", json={"name": "keys", "auth_strategy_id": facts["strategies"]["key_auth"]}
                )
                assert r.status_code == 201, r.text
                key_app = r.json()
                key = dev.post(f"/api/v2/applications/{key_app['id']}/credentials", json={"display_name": "ci"})
                assert key.status_code == 201, key.text
                apikey = key.json()["credential"]
                reg = dev.post(
                    f"/api/v2/applications/{key_app['id']}/registrations",
                    json={"product_version_id": facts["product_versions"]["v2"]},
                )
                assert reg.json()["status"] == "pending"
                denied = _wait_for(lambda: gw.get("/echo/v2/hello", headers={"apikey": apikey}).status_code == 403)
                assert denied
                admin = {"Authorization": f"Bearer {facts['admin_token']}"}
                r = httpx.patch(
                    f"{portal}/v2/portals/{facts['portal_id']}/application-registrations/{reg.json()['id']}",
                    json={"status": "approved"},
                    headers=admin,
                )
                assert r.status_code == 200, r.text
                allowed = _wait_for(
                    lambda: gw.get("/echo/v2/hello", headers={"apikey": apikey}).status_code == 200, timeout=2.5
                )
                assert allowed, "an approval reaches the gateway within the feed's second"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    pids = json.loads((data / "demo.json").read_text())["pids"]
    assert not [name for name, pid in pids.items() if _alive(pid)], "stray processes after Ctrl-C"
