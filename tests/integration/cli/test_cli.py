"""The `keystile` command line, run as a user runs it (subprocesses on a temporary data folder)."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

KEYSTILE = [sys.executable, "-m", "keystile.cli"]


def run(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEYSTILE, *args], env=env, capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    e["KEYSTILE_DATA_DIR"] = str(tmp_path / "data")
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_prints_a_first_admin_token_once_and_it_works(env):
    port = free_port()
    proc = subprocess.Popen([*KEYSTILE, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        token = None
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while time.monotonic() < deadline and token is None:
            line = proc.stderr.readline()
            match = re.search(r"^\s+(kpat_[A-Za-z0-9_-]{43})$", line)
            if match:
                token = match.group(1)
        assert token, "no first admin token printed"
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v2/dcr-providers", headers={"Authorization": token})
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.json()["meta"]["page"]["total"] == 0
        assert "x-keystile-trace-id" in r.headers
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    # second start: no new token printed
    again = subprocess.Popen(
        [*KEYSTILE, "serve", "--port", str(free_port())], env=env, stderr=subprocess.PIPE, text=True
    )
    time.sleep(3)
    again.send_signal(signal.SIGINT)
    _, err = again.communicate(timeout=15)
    assert "kpat_" not in err
    assert (Path(env["KEYSTILE_DATA_DIR"]) / "secret.key").exists()


def test_admin_token_create_and_migrate(env):
    assert run(["migrate"], env).returncode == 0
    out = run(["admin", "token", "create", "--name", "ci"], env)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"kpat_[A-Za-z0-9_-]{43}\n", out.stdout)


def test_refuses_insecure_settings_with_a_message(env):
    env = {**env, "KEYSTILE_PUBLIC_URL": "https://portal.example.com"}
    out = run(["migrate"], env)
    assert out.returncode == 2
    assert "KEYSTILE_SECRET_KEY is required" in out.stderr


def test_keys_rotate_reencrypts_everything(env):
    old = base64.b64encode(os.urandom(32)).decode()
    new = base64.b64encode(os.urandom(32)).decode()
    env = {**env, "KEYSTILE_SECRET_KEY": old}
    assert run(["migrate"], env).returncode == 0
    seed = (
        "import asyncio\n"
        "from keystile.settings import Settings\n"
        "from keystile.services.context import Runtime, SYSTEM\n"
        "from keystile.services import providers\n"
        "async def main():\n"
        "    rt = Runtime.build(Settings())\n"
        "    async with rt.unit(SYSTEM) as ctx:\n"
        "        await providers.create(ctx, {'name': 'p', 'provider_type': 'okta', 'issuer': 'https://x.example.com',"
        " 'dcr_config': {'dcr_token': 'tok-1'}})\n"
        "    await rt.close()\n"
        "asyncio.run(main())\n"
    )
    assert subprocess.run([sys.executable, "-c", seed], env=env, timeout=60).returncode == 0
    out = run(["keys", "rotate", "--new-key-env", "NEW_KEY"], {**env, "NEW_KEY": new})
    assert out.returncode == 0, out.stderr
    assert "re-encrypted 2 secrets" in out.stdout  # the provider's dcr_token and the shared cache key
    # the new key alone now opens the database; the old one alone is refused
    assert run(["migrate"], {**env, "KEYSTILE_SECRET_KEY": new}).returncode == 0
    refused = run(["migrate"], {**env, "KEYSTILE_SECRET_KEY": old})
    assert refused.returncode == 2
    assert "does not match" in refused.stderr


def test_admin_token_list_and_revoke(env):
    token = run(["admin", "token", "create", "--name", "ci"], env).stdout.strip()
    listed = run(["admin", "token", "list"], env)
    assert listed.returncode == 0
    assert token not in listed.stdout
    token_id = listed.stdout.split()[0]
    assert "ci" in listed.stdout and "last used never" in listed.stdout
    out = run(["admin", "token", "revoke", token_id], env)
    assert out.returncode == 0, out.stderr
    assert "revoked" in run(["admin", "token", "list"], env).stdout
    assert run(["admin", "token", "revoke", "not-a-uuid"], env).returncode == 2
    missing = run(["admin", "token", "revoke", "00000000-0000-0000-0000-000000000000"], env)
    assert missing.returncode == 2
    assert "no admin token" in missing.stderr


async def test_a_revoked_token_is_refused(runtime):
    import uuid

    import httpx

    from keystile.app import create_app
    from keystile.services import admin_tokens

    tid, token = await admin_tokens.create(runtime, "short-lived")
    app = create_app(runtime.settings, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/v2/dcr-providers", headers={"Authorization": token})).status_code == 200
        await admin_tokens.revoke(runtime, uuid.UUID(tid))
        assert (await c.get("/v2/dcr-providers", headers={"Authorization": token})).status_code == 401


def test_serve_with_the_builtin_idp_mounted(env):
    import json

    port = free_port()
    env = {**env, "KEYSTILE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [*KEYSTILE, "serve", "--port", str(port), "--with-idp"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        token = None
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and token is None:
            match = re.search(r"^\s+(kpat_[A-Za-z0-9_-]{43})$", proc.stderr.readline())
            token = match.group(1) if match else None
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                meta = httpx.get(f"{base}/idp/.well-known/openid-configuration")
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert meta.status_code == 200
        assert meta.json()["issuer"] == f"{base}/idp"
        facts = json.loads((Path(env["KEYSTILE_DATA_DIR"]) / "idp" / "idp.json").read_text())
        h = {"Authorization": f"Bearer {token}"}
        provider = httpx.post(
            f"{base}/v2/dcr-providers",
            headers=h,
            json={
                "name": "mounted",
                "provider_type": "rfc7591",
                "issuer": f"{base}/idp",
                "dcr_config": {"initial_access_token": facts["initial_access_token"], "rotates_secret_on_put": True},
            },
        )
        assert provider.status_code == 201, provider.text
        verified = httpx.post(
            f"{base}/v2/dcr-providers/{provider.json()['id']}/verify",
            params={"trial_registration": "true"},
            headers=h,
            timeout=30,
        )
        assert verified.json()["status"] == "success", verified.json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
