"""Soak: the whole flow against `keystile demo` on one machine for `--minutes` (default 10).

Starts `keystile demo --free-ports --data-dir <tmp>`, reads `<tmp>/demo.json`, then runs bounded loops on loopback:

- key-auth apps: create app -> create API key -> register for v2 (pending) -> admin approves -> later deleted
  (at most `--live-apps` alive at once, so the data set stays bounded);
- OAuth apps: create app (DCR at the built-in IdP) -> register for v1 (auto-approved) -> later deleted;
- gateway traffic: API-key calls on v2 and client-credentials (Basic) calls on v1 with the live apps.

Reports the error rate and p50/p99 latency per operation and the RSS of every demo process over time
(`/proc/<pid>/status`), as Markdown. Exit code 1 when the error rate is above `--max-error-rate` or when a
process's memory grows steadily (each quarter of the run after warm-up higher than the one before and the last
quarter more than 10 % and 10 MiB above the first).

    python bench/soak.py --minutes 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

XRW = {"X-Requested-With": "soak"}


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def timed(self, op: str, call: Any, *args: Any, ok: tuple[int, ...], **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response: httpx.Response = call(*args, **kwargs)
        except httpx.HTTPError as exc:
            with self.lock:
                self.errors[op].append(type(exc).__name__)
            return None
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[op].append(elapsed)
            if response.status_code not in ok:
                self.errors[op].append(f"{response.status_code} {response.text[:120]}")
                return None
        return response


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _start_demo(data: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSTILE_")}
    log = (data.parent / "demo-output.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "keystile.cli", "demo", "--free-ports", "--data-dir", str(data)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    deadline = time.monotonic() + 180
    marker = data / "demo.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"keystile demo exited with {proc.returncode}; see {data.parent / 'demo-output.log'}")
        if marker.exists():
            try:
                return proc, json.loads(marker.read_text())
            except json.JSONDecodeError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("keystile demo did not come up within 180 s")


@dataclass
class Live:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: list[tuple[str, str, float]] = field(default_factory=list)  # (app id, api key, usable from)
    clients: list[tuple[str, str, str, float]] = field(default_factory=list)  # (app id, id, secret, usable from)


def _key_loop(
    stop: threading.Event, facts: dict[str, Any], cookies: httpx.Cookies, stats: Stats, live: Live, limit: int
) -> None:
    portal, admin_token = facts["urls"]["portal"], facts["admin_token"]
    admin_h = {"Authorization": f"Bearer {admin_token}"}
    i = 0
    with (
        httpx.Client(base_url=portal, headers=XRW, cookies=cookies, timeout=30) as dev,
        httpx.Client(base_url=portal, headers=admin_h, timeout=30) as admin,
    ):
        while not stop.is_set():
            i += 1
            r = stats.timed(
                "app create (key-auth)",
                dev.post,
                "/api/v2/applications",
                ok=(201,),
                json={"name": f"soak-key-{i}", "auth_strategy_id": facts["strategies"]["key_auth"]},
            )
            if r is None:
                time.sleep(0.5)
                continue
            app_id = r.json()["id"]
            r = stats.timed(
                "api key create",
                dev.post,
                f"/api/v2/applications/{app_id}/credentials",
                ok=(201,),
                json={"display_name": "soak"},
            )
            key = r.json()["credential"] if r is not None else None
            r = stats.timed(
                "registration (pending)",
                dev.post,
                f"/api/v2/applications/{app_id}/registrations",
                ok=(201,),
                json={"product_version_id": facts["product_versions"]["v2"]},
            )
            if r is not None:
                stats.timed(
                    "registration approve (admin)",
                    admin.patch,
                    f"/v2/portals/{facts['portal_id']}/application-registrations/{r.json()['id']}",
                    ok=(200,),
                    json={"status": "approved"},
                )
            if key is not None:
                with live.lock:
                    live.keys.append((app_id, key, time.monotonic() + 2.0))
            with live.lock:
                old = live.keys.pop(0) if len(live.keys) > limit else None
            if old is not None:
                stats.timed("app delete", dev.delete, f"/api/v2/applications/{old[0]}", ok=(204,))
            stop.wait(0.2)


def _oauth_loop(
    stop: threading.Event, facts: dict[str, Any], cookies: httpx.Cookies, stats: Stats, live: Live, limit: int
) -> None:
    i = 0
    with httpx.Client(base_url=facts["urls"]["portal"], headers=XRW, cookies=cookies, timeout=30) as dev:
        while not stop.is_set():
            i += 1
            r = stats.timed(
                "app create (DCR at IdP)",
                dev.post,
                "/api/v2/applications",
                ok=(201,),
                json={"name": f"soak-oauth-{i}", "auth_strategy_id": facts["strategies"]["openid_connect"]},
            )
            if r is None:
                time.sleep(0.5)
                continue
            app = r.json()
            r = stats.timed(
                "registration (auto-approved)",
                dev.post,
                f"/api/v2/applications/{app['id']}/registrations",
                ok=(201,),
                json={"product_version_id": facts["product_versions"]["v1"]},
            )
            creds = app["credentials"]
            with live.lock:
                live.clients.append((app["id"], creds["client_id"], creds["client_secret"], time.monotonic() + 2.0))
                old = live.clients.pop(0) if len(live.clients) > limit else None
            if old is not None:
                stats.timed("app delete", dev.delete, f"/api/v2/applications/{old[0]}", ok=(204,))
            stop.wait(1.0)


def _traffic_loop(stop: threading.Event, facts: dict[str, Any], stats: Stats, live: Live) -> None:
    n = 0
    with httpx.Client(base_url=facts["urls"]["gateway"], timeout=30) as gw:
        while not stop.is_set():
            n += 1
            now = time.monotonic()
            with live.lock:
                keys = [k for k in live.keys[:-1] if k[2] <= now]  # the newest may be deleted any moment
                clients = [c for c in live.clients[:-1] if c[3] <= now]
            if n % 2 and keys:
                _, key, _ = keys[n % len(keys)]
                stats.timed("gateway call (API key)", gw.get, "/echo/v2/hello", ok=(200,), headers={"apikey": key})
            elif clients:
                _, cid, secret, _ = clients[n % len(clients)]
                stats.timed(
                    "gateway call (client credentials)",
                    gw.get,
                    "/echo/v1/hello",
                    ok=(200,),
                    headers={"Authorization": f"Basic {cid}:{secret}"},
                )
            else:
                stop.wait(0.2)


def _steady_growth(samples: list[int]) -> tuple[bool, str]:
    """Quarters after a 20 % warm-up: growing in every quarter and the last >10 % and >10 MiB above the first."""
    body = samples[len(samples) // 5 :]
    if len(body) < 8:
        return False, "too few samples to judge"
    q = len(body) // 4
    medians = [statistics.median(body[i * q : (i + 1) * q]) for i in range(4)]
    growing = all(b > a for a, b in itertools.pairwise(medians))
    grew = medians[-1] - medians[0]
    steady = growing and grew > 10 * 1024 and grew > 0.10 * medians[0]
    return steady, "quarter medians " + " -> ".join(f"{m / 1024:.1f}" for m in medians) + " MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--live-apps", type=int, default=20, help="apps kept alive per kind (bounded data)")
    parser.add_argument("--traffic-threads", type=int, default=2)
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--max-error-rate", type=float, default=0.01)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keystile-soak-") as tmp:
        demo, facts = _start_demo(Path(tmp) / "demo")
        try:
            return _run(args, facts)
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()


def _run(args: argparse.Namespace, facts: dict[str, Any]) -> int:
    stats, live, stop = Stats(), Live(), threading.Event()
    with httpx.Client(base_url=facts["urls"]["portal"], headers=XRW, timeout=30) as dev:
        r = dev.post(
            "/api/v2/developer/authenticate",
            json={"username": facts["developer"]["email"], "password": facts["developer"]["password"]},
        )
        if r.status_code != 204:
            raise SystemExit(f"developer sign-in failed: {r.status_code} {r.text[:300]}")
        cookies = dev.cookies
    pids: dict[str, int] = facts["pids"]
    rss: dict[str, list[int]] = {name: [] for name in pids}
    threads = [
        threading.Thread(target=_key_loop, args=(stop, facts, cookies, stats, live, args.live_apps)),
        threading.Thread(target=_oauth_loop, args=(stop, facts, cookies, stats, live, args.live_apps)),
        *[threading.Thread(target=_traffic_loop, args=(stop, facts, stats, live)) for _ in range(args.traffic_threads)],
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    end = started + args.minutes * 60
    try:
        while time.monotonic() < end:
            for name, pid in pids.items():
                value = _rss_kib(pid)
                if value is not None:
                    rss[name].append(value)
            time.sleep(min(args.sample_every, max(0.0, end - time.monotonic())))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    elapsed = time.monotonic() - started

    total = sum(len(v) for v in stats.latencies.values()) + sum(
        len([e for e in errs if not e[0].isdigit()]) for errs in stats.errors.values()
    )
    failed = sum(len(v) for v in stats.errors.values())
    print(f"## Soak: {elapsed / 60:.1f} min, {total} requests, {failed} errors ({failed / max(total, 1):.3%})\n")
    print("| operation | requests | errors | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for op in sorted(set(stats.latencies) | set(stats.errors)):
        lat = stats.latencies.get(op, [])
        n = len(lat) + len([e for e in stats.errors.get(op, []) if not e[0].isdigit()])
        print(
            f"| {op} | {n} | {len(stats.errors.get(op, []))} | "
            f"{_pct(lat, 0.5) * 1000:.1f} | {_pct(lat, 0.99) * 1000:.1f} |"
        )
    print("\n| process | RSS start MiB | RSS middle MiB | RSS end MiB | max MiB | steady growth |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    grown: list[str] = []
    for name, samples in rss.items():
        if not samples:
            print(f"| {name} | – | – | – | – | process gone |")
            grown.append(f"{name} (gone)")
            continue
        steady, why = _steady_growth(samples)
        if steady:
            grown.append(name)
        mid = samples[len(samples) // 2]
        print(
            f"| {name} | {samples[0] / 1024:.1f} | {mid / 1024:.1f} | {samples[-1] / 1024:.1f} | "
            f"{max(samples) / 1024:.1f} | {'YES' if steady else 'no'} ({why}) |"
        )
    for op, errs in sorted(stats.errors.items()):
        for e in sorted(set(errs))[:3]:
            print(f"\nerror sample [{op}]: {e}", file=sys.stderr)
    rate = failed / max(total, 1)
    if rate > args.max_error_rate:
        print(f"\nFAIL: error rate {rate:.3%} above {args.max_error_rate:.3%}")
        return 1
    if grown:
        print(f"\nFAIL: memory grows steadily in {', '.join(grown)}")
        return 1
    print("\nOK: error rate within bounds, no steady memory growth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
