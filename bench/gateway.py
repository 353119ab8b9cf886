"""Gateway benchmark (issue 5, Performance): nginx as a plain reverse proxy vs `keystile gateway`, one run.

Starts an nginx `return 200` upstream, nginx proxying to it (the baseline), a loopback OpenID provider (discovery,
JWKS, token endpoint) and the gateway with a 10,000-application snapshot; drives each with wrk at the same
connection count, baseline and gateway back to back per scenario (this machine is shared, so adjacent runs are
what can be compared). Reports requests/s, p50/p99, gateway CPU µs per request, IdP calls per request (from the
gateway's own metrics), p50/p99 at half of peak load, two workers against one, and RSS with 100,000 apps.

    .tools/bin/uv run --frozen python bench/gateway.py [--duration 8] [--rounds 2] [--write-readme]

Not part of `make test`. Installs `wrk` and `nginx-light` with apt when they are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
CONNECTIONS = 32
APPS = 10_000
TOKENS = 10_000
CC_CLIENTS = 1_000
PV = "74e54925-0000-4000-8000-0000000000aa"
PV_OPEN = "74e54925-0000-4000-8000-0000000000bb"
S_KEY = "a17c0b4e-0000-4000-8000-000000000001"
S_OIDC = "22f8380e-0000-4000-8000-000000000002"


# -- helpers ---------------------------------------------------------------------------------------------------
def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("wrk", "wrk"), ("nginx", "nginx-light")) if shutil.which(tool) is None]
    if missing:
        print(f"installing {' '.join(missing)} with apt", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    out = [pid]
    with contextlib.suppress(OSError, ValueError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out.extend(tree_pids(int(child)))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


NGINX_UPSTREAM = """worker_processes 1; daemon off; pid {dir}/up.pid; error_log {dir}/up.err;
events {{ worker_connections 8192; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;
  location / {{ return 200 "ok\\n"; }} }} }}
"""
NGINX_PROXY = """worker_processes 1; daemon off; pid {dir}/px.pid; error_log {dir}/px.err;
events {{ worker_connections 8192; }}
http {{ access_log off; upstream up {{ server 127.0.0.1:{up}; keepalive 128; }}
  server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;
  location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""


def pinned(cpus: str | None) -> list[str]:
    """`taskset -c CPUS` when pinning is on and possible (the proxies under test share one core, the load
    generator and the upstream the other, so neither proxy fights wrk for its core)."""
    if cpus is None or PIN is False or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", cpus]


PIN = True
PROXY_CPU = "1"
LOAD_CPU = "0"


def start_nginx(conf: str, workdir: Path, name: str, cpus: str | None = None) -> subprocess.Popen[bytes]:
    path = workdir / f"{name}.conf"
    path.write_text(conf)
    return subprocess.Popen(
        [*pinned(cpus), "nginx", "-c", str(path), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# -- the loopback IdP (runs as `bench/gateway.py --serve-idp KEYFILE`) -------------------------------------------
def serve_idp(key_file: str, port: int) -> None:
    from aiohttp import web
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = RSAKey.import_key(json.loads(Path(key_file).read_text()))
    issuer = f"http://127.0.0.1:{port}"

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response({"issuer": issuer, "token_endpoint": f"{issuer}/token", "jwks_uri": f"{issuer}/jwks"})

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [key.as_dict(private=False)]})

    async def token(request: web.Request) -> web.Response:
        raw = base64.b64decode(request.headers["Authorization"][6:]).decode()
        client_id, _, secret = raw.partition(":")
        if secret != f"secret-{client_id}":
            return web.json_response({"error": "invalid_client"}, status=401)
        now = int(time.time())
        claims = {"iss": issuer, "client_id": client_id, "iat": now, "exp": now + 3600}
        return web.json_response(
            {"access_token": jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key), "expires_in": 3600}
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/token", token)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- snapshot -------------------------------------------------------------------------------------------------
def snapshot(apps: int, upstream: int, issuer: str) -> dict[str, Any]:
    applications = []
    registrations = {}
    for i in range(apps):
        key_app = i % 2 == 0
        app_id = f"app-{i:06d}"
        applications.append(
            {
                "id": app_id,
                "name": f"bench {i}",
                "developer_id": f"dev-{i % 500}",
                "portal_id": "portal-1",
                "auth_strategy_id": S_KEY if key_app else S_OIDC,
                "credentials_not_before": None,
                "credentials": [
                    {
                        "type": "api_key_sha256",
                        "id": f"cred-{i}",
                        "value": hashlib.sha256(f"key-{i}".encode()).hexdigest(),
                    }
                    if key_app
                    else {"type": "client_id", "id": f"cid-{i}", "value": f"cid-{i}"}
                ],
            }
        )
        registrations[app_id] = [PV]
    route = {
        "product_id": "86f637b7-0000-4000-8000-000000000000",
        "methods": None,
        "strip_path": True,
        "upstream_url": f"http://127.0.0.1:{upstream}/",
        "connect_timeout_ms": 5000,
        "read_timeout_ms": 60000,
    }
    return {
        "format_version": 1,
        "version": 1,
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "routes": [
            {
                **route,
                "product_version_id": PV,
                "paths": ["/api"],
                "auth_strategy_ids": [S_KEY, S_OIDC],
                "allow_anonymous": False,
            },
            {
                **route,
                "product_version_id": PV_OPEN,
                "paths": ["/open"],
                "auth_strategy_ids": [],
                "allow_anonymous": True,
            },
        ],
        "strategies": [
            {"id": S_KEY, "strategy_type": "key_auth", "key_names": ["apikey"]},
            {
                "id": S_OIDC,
                "strategy_type": "openid_connect",
                "issuer": issuer,
                "discovery_url": f"{issuer}/.well-known/openid-configuration",
                "credential_claim": ["client_id"],
                "scopes": [],
                "auth_methods": ["client_credentials", "bearer"],
                "settings": {"cache_tokens": True},
            },
        ],
        "applications": applications,
        "registrations": registrations,
    }


# -- wrk -----------------------------------------------------------------------------------------------------
LUA_CYCLE = """
local values = {{}}
for line in io.lines("{file}") do values[#values + 1] = line end
local i = 0
request = function()
  i = i % #values + 1
  return wrk.format(nil, nil, {{["{header}"] = values[i]}})
end
"""
LUA_DELAY = """
delay = function() return {ms} end
"""


def run_wrk(
    url: str, duration: float, script: Path | None, delay_ms: float | None = None, workdir: Path | None = None
) -> dict[str, float]:
    cmd = [*pinned(LOAD_CPU), "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s", "--latency"]
    if script is not None or delay_ms is not None:
        assert workdir is not None
        text = script.read_text() if script is not None else ""
        if delay_ms is not None:
            text += LUA_DELAY.format(ms=round(delay_ms, 3))
        combined = workdir / f"wrk-{time.monotonic_ns()}.lua"
        combined.write_text(text)
        cmd += ["-s", str(combined)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert m is not None
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return {
        "rps": rps,
        "requests": total,
        "p50": pct("50"),
        "p99": pct("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": 1 if errors else 0,
    }


async def warm(url: str, header: str, values: list[str]) -> int:
    import httpx

    failures = 0
    queue = list(values)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while queue:
            value = queue.pop()
            response = await client.get(url, headers={header: value})
            failures += response.status_code != 200

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return failures


def idp_calls(status_port: int) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{status_port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("keystile_gateway_idp_requests_total{")
    )


def start_gateway(
    config: Path, port: int, status: int, workers: int, workdir: Path, cpus: str | None = None
) -> subprocess.Popen[bytes]:
    log = (workdir / f"gateway-{port}.err").open("wb")
    proc = subprocess.Popen(
        [
            *pinned(cpus),
            sys.executable,
            "-m",
            "keystile.gateway",
            "gateway",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
            "--status-listen",
            f"127.0.0.1:{status}",
            "--workers",
            str(workers),
            "--state-dir",
            str(workdir / f"state-{port}"),
        ],
        stdout=subprocess.DEVNULL,  # the access log is produced (and paid for), then discarded
        stderr=log,
    )
    wait_port(port, 60)
    wait_port(status, 60)
    return proc


# -- main ---------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument(
        "--pin", action="store_true", help="pin the proxy under test to CPU 1 and wrk, upstream and IdP to CPU 0"
    )
    parser.add_argument("--serve-idp", nargs=2, metavar=("KEYFILE", "PORT"))
    args = parser.parse_args()
    if args.serve_idp:
        serve_idp(args.serve_idp[0], int(args.serve_idp[1]))
        return 0
    ensure_tools()
    global PIN
    PIN = args.pin
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    workdir = Path(tempfile.mkdtemp(prefix="keystile-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_port, px_port, idp_port, gw_port, gw_status = (free_port() for _ in range(5))
        procs.append(start_nginx(NGINX_UPSTREAM.format(dir=workdir, port=up_port), workdir, "up", LOAD_CPU))
        proxy = start_nginx(NGINX_PROXY.format(dir=workdir, port=px_port, up=up_port), workdir, "px", PROXY_CPU)
        procs.append(proxy)
        key = RSAKey.generate_key(2048, parameters={"kid": "bench-1", "use": "sig", "alg": "RS256"}, private=True)
        key_file = workdir / "key.json"
        key_file.write_text(json.dumps(key.as_dict(private=True)))
        procs.append(
            subprocess.Popen([*pinned(LOAD_CPU), sys.executable, __file__, "--serve-idp", str(key_file), str(idp_port)])
        )
        for port in (up_port, px_port, idp_port):
            wait_port(port)
        issuer = f"http://127.0.0.1:{idp_port}"
        config = workdir / "snapshot.json"
        config.write_text(json.dumps(snapshot(APPS, up_port, issuer)))
        os.chmod(config, 0o600)
        gateway = start_gateway(config, gw_port, gw_status, 1, workdir, PROXY_CPU)
        procs.append(gateway)

        now = int(time.time())
        oidc_ids = [i for i in range(APPS) if i % 2 == 1]
        # 10,000 distinct tokens (the jti differs) over the 5,000 openid_connect applications
        tokens = [
            jwt.encode(
                {"alg": "RS256", "kid": "bench-1"},
                {
                    "iss": issuer,
                    "client_id": f"cid-{oidc_ids[n % len(oidc_ids)]}",
                    "iat": now,
                    "exp": now + 7200,
                    "jti": str(n),
                },
                key,
            )
            for n in range(TOKENS)
        ]
        files = {
            "keys": ("apikey", [f"key-{i}" for i in range(0, APPS, 2)]),
            "one_token": ("Authorization", [f"Bearer {tokens[0]}"]),
            "tokens": ("Authorization", [f"Bearer {t}" for t in tokens]),
            "basic": (
                "Authorization",
                [
                    "Basic " + base64.b64encode(f"cid-{i}:secret-cid-{i}".encode()).decode()
                    for i in oidc_ids[:CC_CLIENTS]
                ],
            ),
        }
        scripts: dict[str, Path | None] = {"none": None}
        for name, (header, values) in files.items():
            data = workdir / f"{name}.txt"
            data.write_text("\n".join(values) + "\n")
            script = workdir / f"{name}.lua"
            script.write_text(LUA_CYCLE.format(file=data, header=header))
            scripts[name] = script
        scenarios = [
            ("no auth", "/open/x", "none"),
            ("key-auth (5,000 keys)", "/api/x", "keys"),
            ("bearer, one token", "/api/x", "one_token"),
            ("bearer, 10,000 tokens", "/api/x", "tokens"),
            ("client_credentials warm (1,000 clients)", "/api/x", "basic"),
        ]
        # warm-up: every key, token and client once (the bar is about the warm path), then wrk for the JIT-less rest
        for name, (header, values) in files.items():
            failures = asyncio.run(warm(f"http://127.0.0.1:{gw_port}/api/x", header, values))
            print(f"warmed {name}: {len(values)} values, {failures} not 200", flush=True)
        for _, path, script in scenarios:
            run_wrk(f"http://127.0.0.1:{gw_port}{path}", 2, scripts[script], workdir=workdir)
        run_wrk(f"http://127.0.0.1:{px_port}/x", 2, None)

        results: list[dict[str, Any]] = []
        for name, path, script in scenarios:
            rows = []
            for _ in range(args.rounds):
                px_cpu0 = sum(cpu_seconds(p) for p in tree_pids(proxy.pid))
                base = run_wrk(f"http://127.0.0.1:{px_port}{path}", args.duration, scripts[script], workdir=workdir)
                px_cpu = sum(cpu_seconds(p) for p in tree_pids(proxy.pid)) - px_cpu0
                base["cpu_us"] = px_cpu / max(1, base["requests"]) * 1e6
                calls0, cpu0 = idp_calls(gw_status), cpu_seconds(gateway.pid)
                gw = run_wrk(f"http://127.0.0.1:{gw_port}{path}", args.duration, scripts[script], workdir=workdir)
                cpu = cpu_seconds(gateway.pid) - cpu0
                gw["idp_per_req"] = (idp_calls(gw_status) - calls0) / max(1, gw["requests"])
                gw["cpu_us"] = cpu / max(1, gw["requests"]) * 1e6
                rows.append((base, gw))
            ordered = sorted(rows, key=lambda r: r[1]["rps"] / r[0]["rps"])
            base, gw = ordered[len(ordered) // 2]
            half = run_wrk(
                f"http://127.0.0.1:{gw_port}{path}",
                args.duration,
                scripts[script],
                delay_ms=CONNECTIONS / (gw["rps"] / 2) * 1000,
                workdir=workdir,
            )
            ratios = [r[1]["rps"] / r[0]["rps"] for r in rows]
            results.append({"name": name, "base": base, "gw": gw, "half": half, "ratios": ratios})
            print(
                f"{name}: nginx {base['rps']:.0f}/s, gateway {gw['rps']:.0f}/s, ratio {gw['rps'] / base['rps']:.2f} "
                f"(all rounds {', '.join(f'{r:.2f}' for r in ratios)}), cpu {gw['cpu_us']:.0f} µs/req, "
                f"idp/req {gw['idp_per_req']:.4f}, non-2xx {gw['non2xx']}",
                flush=True,
            )
        rss_10k = sum(rss_mb(p) for p in tree_pids(gateway.pid))
        stop(gateway)
        procs.remove(gateway)

        # two workers against one (key-auth)
        gw2_port, gw2_status = free_port(), free_port()
        gateway2 = start_gateway(config, gw2_port, gw2_status, 2, workdir)
        procs.append(gateway2)
        time.sleep(1.5)
        run_wrk(f"http://127.0.0.1:{gw2_port}/api/x", 3, scripts["keys"], workdir=workdir)
        two = run_wrk(f"http://127.0.0.1:{gw2_port}/api/x", args.duration, scripts["keys"], workdir=workdir)
        base2 = run_wrk(f"http://127.0.0.1:{px_port}/api/x", args.duration, scripts["keys"], workdir=workdir)
        stop(gateway2)
        procs.remove(gateway2)

        # RSS with 100,000 applications
        big = workdir / "snapshot-100k.json"
        big.write_text(json.dumps(snapshot(100_000, up_port, issuer)))
        os.chmod(big, 0o600)
        gw3_port, gw3_status = free_port(), free_port()
        gateway3 = start_gateway(big, gw3_port, gw3_status, 1, workdir)
        procs.append(gateway3)
        run_wrk(f"http://127.0.0.1:{gw3_port}/api/x", 3, scripts["keys"], workdir=workdir)
        rss_100k = rss_mb(gateway3.pid)
        stop(gateway3)
        procs.remove(gateway3)

        report = render(results, two, base2, rss_10k, rss_100k, args)
        print(report)
        if args.write_readme:
            write_readme(report)
        failed = [r["name"] for r in results[1:] if r["gw"]["rps"] / r["base"]["rps"] < 0.35]
        if failed or rss_100k > 300 or any(r["gw"]["idp_per_req"] > 0 for r in results):
            print(f"BAR NOT MET: {failed or ''} rss={rss_100k:.0f} MB", file=sys.stderr)
        return 0
    finally:
        for proc in reversed(procs):
            stop(proc)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}"


def render(
    results: list[dict[str, Any]],
    two: dict[str, float],
    base2: dict[str, float],
    rss_10k: float,
    rss_100k: float,
    args: argparse.Namespace,
) -> str:
    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "scenario",
        "nginx proxy req/s",
        "gateway req/s",
        "ratio (median; bar 0.35)",
        "every round",
        "gateway p50 / p99 ms",
        "nginx p50 / p99 ms",
        "gateway CPU µs/req",
        "nginx proxy CPU µs/req",
        "IdP calls / req",
        "gateway p50 / p99 ms at half peak",
    ]
    lines = [
        f"Measured {when} on {machine()}; nginx {nginx_version}; wrk -t1 -c{CONNECTIONS}, {args.duration:g} s per run, "
        f"{args.rounds} rounds of adjacent nginx/gateway runs per scenario (the median round is shown); one gateway "
        f"worker, one nginx worker; snapshot of {APPS:,} applications; "
        + (
            f"the proxy under test pinned to CPU {PROXY_CPU}, wrk, the upstream and the IdP to CPU {LOAD_CPU} "
            "(taskset); the machine is shared with other work."
            if PIN
            else "nothing pinned; the machine is shared with other work."
        ),
        "",
        "| " + " | ".join(header) + " |",
        "| --- | " + " | ".join("---:" for _ in header[1:]) + " |",
    ]
    for r in results:
        b, g, h = r["base"], r["gw"], r["half"]
        cells = [
            r["name"],
            f"{b['rps']:,.0f}",
            f"{g['rps']:,.0f}",
            f"**{g['rps'] / b['rps']:.2f}**",
            ", ".join(f"{x:.2f}" for x in r["ratios"]),
            f"{g['p50']:.2f} / {g['p99']:.2f}",
            f"{b['p50']:.2f} / {b['p99']:.2f}",
            f"{g['cpu_us']:.0f}",
            f"{b['cpu_us']:.0f}",
            f"{g['idp_per_req']:.4f}",
            f"{h['p50']:.2f} / {h['p99']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    one = results[1]["gw"]["rps"]
    non2xx = ", ".join(f"{r['name']}: {r['gw']['non2xx']}" for r in results)
    lines += [
        "",
        f"- Two workers, key-auth: {two['rps']:,.0f} req/s against {base2['rps']:,.0f} for nginx (one worker) in the "
        f"next run and {one:,.0f} for one gateway worker above. wrk, nginx and both workers share 2 cores: read "
        "with care.",
        f"- RSS: {rss_10k:.0f} MB with 10,000 applications after the runs above (warm caches: 10,000 verified "
        f"tokens, 1,000 exchanges); {rss_100k:.0f} MB with 100,000 applications (bar 300 MB).",
        f"- Non-2xx answers during the measured gateway runs: {non2xx}.",
    ]
    return "\n".join(lines)


def write_readme(report: str) -> None:
    text = README.read_text() if README.exists() else ""
    begin, end = "<!-- gateway-results:begin -->", "<!-- gateway-results:end -->"
    block = f"{begin}\n{report}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    README.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
