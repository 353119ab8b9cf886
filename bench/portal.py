"""Portal benchmark: the data-plane snapshot at scale (contracts/gateway.md §3).

Seeds N applications (default 100,000; half key-auth with an API key, half DCR client ids, each with an approved
registration) through the store layer, then reports the snapshot build time (cold, one consistent read + JSON +
gzip), its size raw and gzipped, how long a held long poll takes to wake after a committed change, and the time
from that change to the next snapshot being ready. Aims (issue 4): build < 2 s, wake-up < 100 ms.
Run: `.tools/bin/uv run python bench/portal.py [--apps N] [--backends sqlite postgres]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import insert

from keystile.services import dataplane, installation
from keystile.services.context import SYSTEM, Ctx, Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.models import (
    ApiProduct,
    Application,
    AuthStrategy,
    Credential,
    Developer,
    Portal,
    PortalProductVersion,
    ProductVersion,
    Registration,
)

PG_ADMIN = os.environ.get("KEYSTILE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
KEY = base64.b64encode(bytes(range(32))).decode()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def seed(rt: Runtime, apps: int) -> None:
    """A product with two routed versions (OIDC and key-auth), one developer per 100 apps, N apps."""
    async with rt.sessions() as s:
        portal = (await s.execute(Portal.__table__.select().where(Portal.name == "default"))).first()
        assert portal is not None
        portal_id = portal.id
        oidc = AuthStrategy(
            id=uuid.uuid4(),
            name="oidc",
            display_name="oidc",
            strategy_type="openid_connect",
            configs={
                "issuer": "https://idp.example.com/oauth2/default",
                "credential_claim": ["client_id"],
                "scopes": ["openid"],
                "auth_methods": ["client_credentials", "bearer"],
            },
        )
        keys = AuthStrategy(
            id=uuid.uuid4(),
            name="keys",
            display_name="keys",
            strategy_type="key_auth",
            configs={"key_names": ["apikey"]},
        )
        product = ApiProduct(id=uuid.uuid4(), name="Billing")
        s.add_all([oidc, keys, product])
        await s.flush()
        versions = []
        for i, strategy in enumerate((oidc, keys)):
            v = ProductVersion(
                id=uuid.uuid4(),
                product_id=product.id,
                name=f"v{i + 1}",
                gateway_service={"upstream_url": "http://upstream:8080", "paths": [f"/billing/v{i + 1}"]},
            )
            s.add(v)
            await s.flush()
            s.add(
                PortalProductVersion(
                    portal_id=portal_id,
                    product_version_id=v.id,
                    publish_status="published",
                    application_registration_enabled=True,
                    auth_strategy_id=strategy.id,
                )
            )
            versions.append(v.id)
        await s.commit()
        developers = [
            {
                "id": uuid.uuid4(),
                "portal_id": portal_id,
                "email": f"dev{i}@example.com",
                "full_name": f"Dev {i}",
                "status": "approved",
            }
            for i in range(max(1, apps // 100))
        ]
        await s.execute(insert(Developer), developers)
        batch = 5000
        for start in range(0, apps, batch):
            rows, creds, regs = [], [], []
            for i in range(start, min(apps, start + batch)):
                app_id = uuid.uuid4()
                key_auth = i % 2 == 1
                rows.append(
                    {
                        "id": app_id,
                        "portal_id": portal_id,
                        "developer_id": developers[i % len(developers)]["id"],
                        "auth_strategy_id": keys.id if key_auth else oidc.id,
                        "name": f"app-{i}",
                        "status": "active",
                        "reference_id": None if key_auth else f"client-{i}",
                        "scopes": [],
                        "labels": {},
                        "handles": {},
                        "secrets": {},
                        "idp_metadata": {},
                        "needs_attention": False,
                    }
                )
                if key_auth:
                    creds.append(
                        {
                            "id": uuid.uuid4(),
                            "application_id": app_id,
                            "type": "api_key",
                            "key_sha256": hashlib.sha256(f"key-{i}".encode()).hexdigest(),
                            "status": "active",
                        }
                    )
                regs.append(
                    {
                        "id": uuid.uuid4(),
                        "application_id": app_id,
                        "product_version_id": versions[1] if key_auth else versions[0],
                        "portal_id": portal_id,
                        "status": "approved",
                    }
                )
            await s.execute(insert(Application), rows)
            if creds:
                await s.execute(insert(Credential), creds)
            await s.execute(insert(Registration), regs)
        await installation.bump_config_version(Ctx(rt, s, SYSTEM))
        await s.commit()


async def measure(url: str, data_dir: Path, apps: int) -> dict[str, float]:
    settings = Settings(data_dir=data_dir, database_url=url, secret_key=KEY)
    rt = Runtime.build(settings)
    try:
        await migrate.upgrade(rt.engine)
        await installation.ensure(rt)
        started = time.perf_counter()
        await seed(rt, apps)
        seeded = time.perf_counter() - started
        builds, reads = [], []
        built = None
        for _ in range(3):
            t0 = time.perf_counter()
            document = await dataplane.build_snapshot(rt)
            reads.append(time.perf_counter() - t0)
            built = dataplane.encode_snapshot(document)
            builds.append(time.perf_counter() - t0)
        assert built is not None
        feed = dataplane.hub(rt)
        snap = await feed.snapshot()
        wakes, readies = [], []
        for _ in range(5):
            known = await feed.current_version()
            waiter = asyncio.create_task(feed.wait(None, known, 10))
            while feed.version is None or not feed._waiters:  # noqa: ASYNC110 - the hub exposes no event for this
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            async with rt.unit(SYSTEM) as ctx:
                await installation.bump_config_version(ctx)
                await ctx.session.commit()
            outcome = await waiter
            wakes.append(time.perf_counter() - t0)
            assert outcome == "changed", outcome
            snap = await feed.snapshot()
            readies.append(time.perf_counter() - t0)
        return {
            "seed_s": seeded,
            "build_s": statistics.median(builds),
            "read_s": statistics.median(reads),
            "size_mb": len(built.body) / 1e6,
            "gzip_mb": len(built.gzipped) / 1e6,
            "wake_ms": statistics.median(wakes) * 1000,
            "ready_s": statistics.median(readies),
            "version": float(snap.version),
        }
    finally:
        await rt.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=100_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, {args.apps} applications"
    )
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            name = None
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            else:
                name = f"keystile_bench_{os.getpid()}"
                try:
                    with psycopg.connect(_libpq(PG_ADMIN), autocommit=True, connect_timeout=5) as conn:
                        conn.execute(f'CREATE DATABASE "{name}"')
                except psycopg.OperationalError as exc:
                    print(f"{backend}: skipped ({exc})")
                    continue
                url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            try:
                r = asyncio.run(measure(url, Path(tmp), args.apps))
            finally:
                if name is not None:
                    with psycopg.connect(_libpq(PG_ADMIN), autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(
            f"{backend:8} seed {r['seed_s']:.0f} s | snapshot build {r['build_s'] * 1000:.0f} ms, of which the"
            f" database read {r['read_s'] * 1000:.0f} ms (median of 3)"
            f" | size {r['size_mb']:.1f} MB, gzip {r['gzip_mb']:.1f} MB | long-poll wake {r['wake_ms']:.1f} ms"
            f" (aim < 100 ms) | change → next snapshot ready {r['ready_s'] * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
