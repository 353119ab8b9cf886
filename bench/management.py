"""Management API benchmark: create and list providers and strategies through a real `keystile serve`.

Reports p50/p99 latency and requests/s for creates and list pages, and the list latency with 10,000 strategies,
on SQLite and on PostgreSQL (a database this script creates and drops). Aim: pages of 100 in p99 < 50 ms at
10,000 rows. Run: `make bench` or `.tools/bin/uv run python bench/management.py [--rows N] [--backends sqlite]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PG_ADMIN = os.environ.get("KEYSTILE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_server(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`keystile serve` on a free port, its log in `log_path`; (process, base URL, first admin token)."""
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "keystile.cli", "serve", "--port", str(port)],
        env={**env, "KEYSTILE_LOG_LEVEL": "WARNING"},
        stderr=log,
    )
    log.close()
    token = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not token:
        match = re.search(r"^\s+(kpat_\S{43})$", log_path.read_text(errors="replace"), re.M)
        token = match.group(1) if match else ""
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/v2/openapi.json", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, base, token


async def timed(client: httpx.AsyncClient, method: str, url: str, **kw: object) -> float:
    t0 = time.perf_counter()
    r = await client.request(method, url, **kw)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    if r.status_code >= 400:
        raise RuntimeError(f"{method} {url}: {r.status_code} {r.text[:200]}")
    return elapsed


async def run_backend(name: str, env: dict[str, str], rows: int, concurrency: int) -> list[str]:
    proc, base, token = start_server(env, Path(env["KEYSTILE_DATA_DIR"]).parent / f"{name}.log")
    out: list[str] = []
    try:
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
            provider = (
                await client.post(
                    "/v2/dcr-providers",
                    json={
                        "name": "bench",
                        "provider_type": "okta",
                        "issuer": "https://bench.example.com",
                        "dcr_config": {"dcr_token": "t"},
                    },
                )
            ).json()

            async def create(i: int) -> float:
                body = {
                    "name": f"strategy {i}",
                    "display_name": f"S{i}",
                    "strategy_type": "openid_connect",
                    "dcr_provider_id": provider["id"],
                    "configs": {
                        "openid-connect": {
                            "issuer": "https://bench.example.com",
                            "credential_claim": ["cid"],
                            "auth_methods": ["client_credentials", "bearer"],
                        }
                    },
                }
                return await timed(client, "POST", "/v2/application-auth-strategies", json=body)

            sem = asyncio.Semaphore(concurrency)

            async def bounded(i: int) -> float:
                async with sem:
                    return await create(i)

            t0 = time.perf_counter()
            lat = await asyncio.gather(*(bounded(i) for i in range(rows)))
            wall = time.perf_counter() - t0
            out.append(
                f"| {name} | create strategy | {rows} | {rows / wall:.0f} | {pct(lat, 50) * 1000:.1f} | "
                f"{pct(lat, 99) * 1000:.1f} |"
            )
            pages = max(1, rows // 100)

            async def page(n: int) -> float:
                async with sem:
                    return await timed(
                        client,
                        "GET",
                        "/v2/application-auth-strategies",
                        params={"page[size]": 100, "page[number]": n % pages + 1},
                    )

            t0 = time.perf_counter()
            lat = await asyncio.gather(*(page(n) for n in range(500)))
            wall = time.perf_counter() - t0
            out.append(
                f"| {name} | list page of 100 at {rows} rows | 500 | {500 / wall:.0f} | {pct(lat, 50) * 1000:.1f} | "
                f"{pct(lat, 99) * 1000:.1f} |"
            )
            seq = [
                await timed(
                    client,
                    "GET",
                    "/v2/application-auth-strategies",
                    params={"page[size]": 100, "page[number]": n % pages + 1},
                )
                for n in range(200)
            ]
            out.append(
                f"| {name} | list page of 100, one at a time | 200 | {200 / sum(seq):.0f} | "
                f"{statistics.median(seq) * 1000:.1f} | {pct(seq, 99) * 1000:.1f} |"
            )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    lines = [
        f"Management API, {platform.node()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, "
        f"concurrency {args.concurrency}",
        "",
        "| backend | operation | requests | req/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            env = {**base_env, "KEYSTILE_DATA_DIR": str(Path(tmp) / backend)}
            if backend == "postgres":
                import psycopg

                db = f"keystile_bench_{os.getpid()}"
                admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{db}"')
                env["KEYSTILE_DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
                try:
                    lines += asyncio.run(run_backend(backend, env, args.rows, args.concurrency))
                finally:
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            else:
                lines += asyncio.run(run_backend(backend, env, args.rows, args.concurrency))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
