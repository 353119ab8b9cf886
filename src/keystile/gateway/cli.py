"""`keystile gateway` (contracts/gateway.md §1). The lead wires `register` into `keystile/cli.py`."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

__all__ = ["build_options", "parse_listen", "parse_size", "register"]

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: str) -> int:
    """`10MiB`, `512k`, `1048576`, `0` (no limit) → bytes."""
    match = _SIZE.match(value)
    if match is None:
        raise typer.BadParameter(f"{value!r} is not a size (e.g. 10MiB, 512KiB, 0)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _UNITS[unit]


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise typer.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all interfaces


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_options(
    *,
    control_plane: str | None,
    token: str | None,
    config: Path | None,
    listen: str,
    status_listen: str,
    workers: int,
    state_dir: Path,
    trusted_proxies: str | None,
    max_body_size: str,
    insecure_cookies: bool,
    ca_file: Path | None,
    metrics_no_app_label: bool,
    redis_url: str | None,
) -> object:
    from keystile.gateway.app import GatewayOptions

    if config is not None and control_plane is not None:
        raise typer.BadParameter("--config excludes --control-plane")
    if config is None and control_plane is None:
        raise typer.BadParameter("give --control-plane URL (with --token) or --config FILE")
    if control_plane is not None:
        parts = urlsplit(control_plane)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise typer.BadParameter("--control-plane must be an http(s) URL")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise typer.BadParameter("--control-plane must use https unless the host is loopback")
        if not token:
            raise typer.BadParameter("--token (or KEYSTILE_GATEWAY_TOKEN) is required with --control-plane")
    if workers < 1:
        raise typer.BadParameter("--workers must be at least 1")
    networks = []
    for item in (trusted_proxies or "").split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as exc:
                raise typer.BadParameter(f"--trusted-proxies: {item!r} is not a CIDR") from exc
    if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise typer.BadParameter("--redis-url must be a redis://, rediss:// or unix:// URL")
    return GatewayOptions(
        control_plane=control_plane,
        token=token,
        config_file=config,
        listen=parse_listen(listen),
        status_listen=parse_listen(status_listen),
        workers=workers,
        state_dir=state_dir,
        trusted_proxies=networks,
        max_body_size=parse_size(max_body_size),
        insecure_cookies=insecure_cookies,
        ca_file=ca_file,
        metrics_no_app_label=metrics_no_app_label,
        redis_url=redis_url,
    )


def register(app: typer.Typer) -> None:
    """Add the `gateway` command to the root CLI."""

    @app.command("gateway")
    def gateway(
        control_plane: Annotated[
            str | None, typer.Option("--control-plane", envvar="KEYSTILE_GATEWAY_CONTROL_PLANE", help="feed base URL")
        ] = None,
        token: Annotated[
            str | None,
            typer.Option(
                "--token", envvar="KEYSTILE_GATEWAY_TOKEN", help="data-plane token kdp_… (prefer the env var)"
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option("--config", envvar="KEYSTILE_GATEWAY_CONFIG", help="run from a snapshot file (JSON or YAML)"),
        ] = None,
        listen: Annotated[str, typer.Option("--listen", help="proxy HOST:PORT")] = "0.0.0.0:8000",
        status_listen: Annotated[str, typer.Option("--status-listen", help="metrics/status HOST:PORT")] = (
            "127.0.0.1:8100"
        ),
        workers: Annotated[int, typer.Option("--workers", help="processes sharing the proxy port")] = 1,
        state_dir: Annotated[Path, typer.Option("--state-dir", help="last-known-good snapshot and node id")] = Path(
            "keystile-gateway"
        ),
        trusted_proxies: Annotated[
            str | None, typer.Option("--trusted-proxies", help="CIDRs whose X-Forwarded-* are believed")
        ] = None,
        max_body_size: Annotated[str, typer.Option("--max-body-size", help="request body limit; 0 = none")] = "10MiB",
        insecure_cookies: Annotated[
            bool, typer.Option("--insecure-cookies", help="omit Secure on session cookies (plain-http development)")
        ] = False,
        ca_file: Annotated[Path | None, typer.Option("--ca-file", help="extra CA bundle")] = None,
        metrics_no_app_label: Annotated[
            bool, typer.Option("--metrics-no-app-label", help="drop application_id from metrics")
        ] = False,
        redis_url: Annotated[
            str | None,
            typer.Option(
                "--redis-url",
                envvar="KEYSTILE_REDIS_URL",
                help="share client-credentials tokens with the other gateways (redis://, rediss://, unix://)",
            ),
        ] = None,
    ) -> None:
        """Run the gateway (data plane)."""
        from keystile.gateway.app import GatewayOptions, run

        options = build_options(
            control_plane=control_plane,
            token=token,
            config=config,
            listen=listen,
            status_listen=status_listen,
            workers=workers,
            state_dir=state_dir,
            trusted_proxies=trusted_proxies,
            max_body_size=max_body_size,
            insecure_cookies=insecure_cookies,
            ca_file=ca_file,
            metrics_no_app_label=metrics_no_app_label,
            redis_url=redis_url,
        )
        assert isinstance(options, GatewayOptions)
        raise typer.Exit(run(options))
