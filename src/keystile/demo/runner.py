"""Start the demo's four processes, seed them as an admin would (over the Management API), print the walkthrough
and write `<data dir>/demo.json`; stop everything on Ctrl-C or SIGTERM."""

from __future__ import annotations

import base64
import email
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from typing import Any

import httpx

from keystile.demo.upstream import OPENAPI

__all__ = ["DemoOptions", "run_demo"]

MARKER = "demo.json"
DEVELOPER_EMAIL = "dev@example.com"
DEVELOPER_PASSWORD = "demo-password-1234"
PREFERRED_PORTS = {"portal": 8080, "gateway": 8000, "gateway_status": 8100, "idp": 9400, "upstream": 9500}


class DemoError(Exception):
    """A demo step failed; the message says which and why."""


@dataclass
class DemoOptions:
    data_dir: Path = Path("keystile-demo")
    free_ports: bool = False
    okta_issuer: str | None = None
    okta_token: str | None = None
    echo: Callable[[str], None] = print


@dataclass
class Demo:
    options: DemoOptions
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.options.data_dir.resolve()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _choose_ports(free: bool) -> dict[str, int]:
    ports: dict[str, int] = {}
    for name, preferred in PREFERRED_PORTS.items():
        ports[name] = preferred if not free and _port_free(preferred) else _free_port()
    return ports


def _fresh_folder(path: Path) -> None:
    """Empty the demo folder; refuse to wipe a folder that is not an earlier demo's."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists() and not (path / "control-plane").exists():
            raise DemoError(f"{path} exists and is not a keystile demo folder; pass --data-dir to choose another")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the {name} exited with code {proc.returncode}; its log: {log}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise DemoError(f"the {name} did not answer at {url} within {timeout:.0f} s; its log: {log}")


def _start(demo: Demo, name: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = demo.data / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = log.open("wb")
    proc = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    fh.close()
    demo.procs[name] = proc
    return proc, log


def _keystile(*args: str) -> list[str]:
    return [sys.executable, "-m", "keystile.cli", *args]


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise DemoError(f"{what} failed: {response.status_code} {response.text[:500]}")
    if not response.content:
        return {}
    out: dict[str, Any] = response.json()
    return out


def _admin_token(demo: Demo, env: dict[str, str]) -> str:
    out = subprocess.run(
        _keystile("admin", "token", "create", "--name", "demo admin"), env=env, capture_output=True, timeout=120
    )
    if out.returncode != 0:
        raise DemoError(f"creating the admin token failed: {out.stderr.decode()[-500:]}")
    return out.stdout.decode().strip()


def _seed(demo: Demo, admin: httpx.Client) -> None:
    """What an admin does, through the Management API."""
    facts = demo.facts
    idp = facts["idp"]
    if demo.options.okta_issuer and demo.options.okta_token:
        provider_body: dict[str, Any] = {
            "name": "Okta",
            "provider_type": "okta",
            "issuer": demo.options.okta_issuer,
            "dcr_config": {"dcr_token": demo.options.okta_token},
        }
        issuer, claims, scopes = demo.options.okta_issuer, ["cid", "client_id"], ["keystile:demo"]
    else:
        provider_body = {
            "name": "Built-in IdP",
            "provider_type": "rfc7591",
            "issuer": idp["issuer"],
            "dcr_config": {
                "initial_client_id": idp["admin_client_id"],
                "initial_client_secret": idp["admin_client_secret"],
                "initial_client_scope": "dcr",
                "rotates_secret_on_put": True,
            },
        }
        issuer, claims, scopes = idp["issuer"], ["client_id"], ["read"]
    provider = _check(admin.post("/v2/dcr-providers", json=provider_body), "creating the DCR provider")
    verify = _check(admin.post(f"/v2/dcr-providers/{provider['id']}/verify"), "verifying the DCR provider")
    if verify.get("status") != "success":
        raise DemoError(f"the DCR provider does not verify: {verify.get('errors')}")
    oidc = _check(
        admin.post(
            "/v2/application-auth-strategies",
            json={
                "name": "Demo client credentials",
                "display_name": "OAuth client credentials",
                "strategy_type": "openid_connect",
                "dcr_provider_id": provider["id"],
                "configs": {
                    "openid-connect": {
                        "issuer": issuer,
                        "credential_claim": claims,
                        "scopes": scopes,
                        "auth_methods": ["client_credentials", "bearer", "session"],
                    }
                },
            },
        ),
        "creating the openid_connect strategy",
    )
    key_auth = _check(
        admin.post(
            "/v2/application-auth-strategies",
            json={
                "name": "Demo API keys",
                "display_name": "API key",
                "strategy_type": "key_auth",
                "configs": {"key-auth": {"key_names": ["apikey"], "ttl": {"value": 90, "unit": "days"}}},
            },
        ),
        "creating the key_auth strategy",
    )
    portals = _check(admin.get("/v2/portals", params={"filter[name]": "default"}), "finding the default portal")
    if not portals.get("data"):
        raise DemoError("the control plane has no portal named default")
    portal = portals["data"][0]
    _check(
        admin.patch(f"/v2/portals/{portal['id']}", json={"auto_approve_developers": True}),
        "letting the demo portal approve developers",
    )
    product = _check(
        admin.post(
            "/v2/api-products",
            json={"name": "Echo API", "description": "Answers with what it received.", "portal_ids": [portal["id"]]},
        ),
        "creating the product",
    )
    spec = base64.b64encode(json.dumps(OPENAPI, indent=2).encode()).decode()
    versions: dict[str, dict[str, Any]] = {}
    for name, strategy, auto in (("v1", oidc, True), ("v2", key_auth, False)):
        version = _check(
            admin.post(
                f"/v2/api-products/{product['id']}/product-versions",
                json={
                    "name": name,
                    "gateway_service": {"upstream_url": demo.url("upstream"), "paths": [f"/echo/{name}"]},
                },
            ),
            f"creating version {name}",
        )
        _check(
            admin.post(
                f"/v2/api-products/{product['id']}/product-versions/{version['id']}/specifications",
                json={"name": "openapi.json", "content": spec},
            ),
            f"uploading the {name} specification",
        )
        _check(
            admin.post(
                f"/v2/portals/{portal['id']}/product-versions",
                json={
                    "product_version_id": version["id"],
                    "publish_status": "published",
                    "application_registration_enabled": True,
                    "auto_approve_registration": auto,
                    "deprecated": False,
                    "auth_strategy_ids": [strategy["id"]],
                },
            ),
            f"publishing {name}",
        )
        versions[name] = version
    token = _check(admin.post("/v2/data-plane/tokens", json={"name": "demo gateway"}), "creating a data-plane token")
    facts.update(
        {
            "portal_id": portal["id"],
            "provider_id": provider["id"],
            "strategies": {"openid_connect": oidc["id"], "key_auth": key_auth["id"]},
            "product_id": product["id"],
            "product_versions": {k: v["id"] for k, v in versions.items()},
            "dataplane_token": token["token"],
        }
    )


def _sign_up_developer(demo: Demo) -> None:
    """A developer account, made the way a developer makes one (sign-up mail → verify → set password)."""
    portal = demo.url("portal")
    headers = {"X-Requested-With": "keystile-demo"}
    with httpx.Client(base_url=portal, headers=headers, timeout=30) as dev:
        _check(dev.post("/api/v2/developer", json={"email": DEVELOPER_EMAIL, "full_name": "Demo Developer"}), "sign-up")
        token = None
        deadline = time.monotonic() + 10
        outbox = Path(demo.facts["mail_outbox"])
        while token is None and time.monotonic() < deadline:
            for path in sorted(outbox.glob("*.eml")):
                message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
                body = message.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                for word in text.split():
                    if "verify-email?token=" in word:
                        token = word.split("token=", 1)[1].strip(".,)>\"'")
            time.sleep(0.1)
        if token is None:
            raise DemoError(f"no verification mail arrived in {outbox}")
        verified = _check(dev.post("/api/v2/developer/verify-email", json={"token": token}), "verifying the email")
        _check(
            dev.post(
                "/api/v2/developer/reset-password", json={"token": verified["token"], "password": DEVELOPER_PASSWORD}
            ),
            "setting the developer's password",
        )


def _walkthrough(demo: Demo) -> str:
    f = demo.facts
    p, g = demo.url("portal"), demo.url("gateway")
    v1 = f["product_versions"]["v1"]
    token_endpoint = f["idp"]["token_endpoint"] if not demo.options.okta_issuer else "<your Okta token endpoint>"
    xrw = "-H 'X-Requested-With: curl'"
    return f"""
keystile demo is running.

  Portal (developer pages)  {p}/
  Admin pages               {p}/admin/   (sign in with the admin token below)
  Management API            {p}/v2/      (docs: {p}/v2/docs)
  Gateway                   {g}/echo/v1/…  and  {g}/echo/v2/…
  Built-in IdP (issuer)     {f["idp"]["issuer"]}
  Mail (sign-up, reset)     {f["mail_outbox"]}/*.eml
  Facts for scripts         {demo.data / MARKER}

  Admin token (shown once)  {f["admin_token"]}
  Developer account         {DEVELOPER_EMAIL} / {DEVELOPER_PASSWORD}

Try the whole flow with curl:

  # 1. sign in as the developer (keeps the session cookie in ./demo-cookies)
  curl -c demo-cookies {xrw} -H 'content-type: application/json' \\
       -d '{{"username": "{DEVELOPER_EMAIL}", "password": "{DEVELOPER_PASSWORD}"}}' \\
       {p}/api/v2/developer/authenticate

  # 2. create an application: keystile registers a client at the IdP; the secret is shown once
  curl -b demo-cookies {xrw} -H 'content-type: application/json' \\
       -d '{{"name": "my-app", "auth_strategy_id": "{f["strategies"]["openid_connect"]}"}}' \\
       {p}/api/v2/applications
  export APP_ID=<id> CLIENT_ID=<credentials.client_id> CLIENT_SECRET=<credentials.client_secret>

  # 3. register it for Echo API v1 (auto-approved in this demo)
  curl -b demo-cookies {xrw} -H 'content-type: application/json' \\
       -d '{{"product_version_id": "{v1}"}}' {p}/api/v2/applications/$APP_ID/registrations

  # 4. call the API through the gateway with the client credentials (exchanged at the IdP)
  curl -H "Authorization: Basic $CLIENT_ID:$CLIENT_SECRET" {g}/echo/v1/hello

  # 5. or get a token yourself and call with it
  curl -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d scope=read {token_endpoint}
  curl -H "Authorization: Bearer <access_token>" {g}/echo/v1/hello

Stop everything with Ctrl-C.
"""


def _stop(demo: Demo) -> None:
    for proc in demo.procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in demo.procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(options: DemoOptions) -> int:
    """Run until interrupted. Returns the exit code."""
    demo = Demo(options)
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        _fresh_folder(demo.data)
        demo.ports = _choose_ports(options.free_ports)
        base = _base_env()
        outbox = demo.data / "mail"
        outbox.mkdir()
        demo.facts["mail_outbox"] = str(outbox)

        proc, log = _start(
            demo,
            "upstream",
            [sys.executable, "-m", "keystile.demo.upstream", "--port", str(demo.ports["upstream"])],
            base,
        )
        _wait_http(demo.url("upstream") + "/hello", proc, "sample upstream", log)

        idp_dir = demo.data / "idp"
        proc, log = _start(
            demo, "idp", _keystile("idp", "serve", "--port", str(demo.ports["idp"]), "--data-dir", str(idp_dir)), base
        )
        _wait_http(demo.url("idp") + "/.well-known/openid-configuration", proc, "built-in IdP", log)
        demo.facts["idp"] = json.loads((idp_dir / "idp.json").read_text())

        cp_env = {
            **base,
            "KEYSTILE_DATA_DIR": str(demo.data / "control-plane"),
            "KEYSTILE_PUBLIC_URL": demo.url("portal"),
            "KEYSTILE_GATEWAY_PUBLIC_URL": demo.url("gateway"),
            "KEYSTILE_MAIL_OUTBOX": str(outbox),
            "KEYSTILE_LOG_FORMAT": "json",
        }
        migrated = subprocess.run(_keystile("migrate"), env=cp_env, capture_output=True, timeout=120)
        if migrated.returncode != 0:
            raise DemoError(f"migrating the demo database failed: {migrated.stderr.decode()[-500:]}")
        demo.facts["admin_token"] = _admin_token(demo, cp_env)
        proc, log = _start(demo, "control-plane", _keystile("serve", "--port", str(demo.ports["portal"])), cp_env)
        _wait_http(demo.url("portal") + "/api/v2/portal", proc, "control plane", log)

        with httpx.Client(
            base_url=demo.url("portal"), headers={"Authorization": f"Bearer {demo.facts['admin_token']}"}, timeout=60
        ) as admin:
            _seed(demo, admin)
        _sign_up_developer(demo)

        gw_env = {**base, "KEYSTILE_GATEWAY_TOKEN": demo.facts.pop("dataplane_token")}
        proc, log = _start(
            demo,
            "gateway",
            _keystile(
                "gateway",
                "--control-plane",
                demo.url("portal"),
                "--listen",
                f"127.0.0.1:{demo.ports['gateway']}",
                "--status-listen",
                f"127.0.0.1:{demo.ports['gateway_status']}",
                "--state-dir",
                str(demo.data / "gateway"),
                "--insecure-cookies",
            ),
            gw_env,
        )
        _wait_http(demo.url("gateway_status") + "/status/ready", proc, "gateway", log)

        facts = {
            **demo.facts,
            "urls": {name: demo.url(name) for name in demo.ports},
            "ports": demo.ports,
            "developer": {"email": DEVELOPER_EMAIL, "password": DEVELOPER_PASSWORD},
            "pids": {name: p.pid for name, p in demo.procs.items()},
        }
        marker = demo.data / MARKER
        marker.write_text(json.dumps(facts, indent=2))
        marker.chmod(0o600)
        options.echo(_walkthrough(demo))
        while not stop:
            for name, p in demo.procs.items():
                if p.poll() is not None:
                    raise DemoError(f"the {name} stopped (exit code {p.returncode}); see {demo.data / 'logs'}")
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except DemoError as exc:
        options.echo(f"keystile demo: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(demo)
