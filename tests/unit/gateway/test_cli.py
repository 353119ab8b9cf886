"""`keystile gateway` options (contracts/gateway.md §1)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keystile.gateway.app import GatewayOptions
from keystile.gateway.cli import build_options, parse_listen, parse_size, register


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10MiB", 10 * 1024**2), ("512k", 512 * 1024), ("1048576", 1048576), ("0", 0), ("2GB", 2 * 1024**3)],
)
def test_sizes(value: str, expected: int) -> None:
    assert parse_size(value) == expected


def test_listen() -> None:
    assert parse_listen("127.0.0.1:8100") == ("127.0.0.1", 8100)
    assert parse_listen(":8000") == ("0.0.0.0", 8000)
    assert parse_listen("[::1]:9") == ("::1", 9)
    for bad in ("8000", "host:port", "h:70000"):
        with pytest.raises(typer.BadParameter):
            parse_listen(bad)


def _opts(**overrides):
    values = {
        "control_plane": None,
        "token": None,
        "config": None,
        "listen": "0.0.0.0:8000",
        "status_listen": "127.0.0.1:8100",
        "workers": 1,
        "state_dir": Path("keystile-gateway"),
        "trusted_proxies": None,
        "max_body_size": "10MiB",
        "insecure_cookies": False,
        "ca_file": None,
        "metrics_no_app_label": False,
        "redis_url": None,
    }
    values.update(overrides)
    return build_options(**values)


def test_build_options() -> None:
    opts = _opts(control_plane="http://127.0.0.1:8080", token="kdp_x", trusted_proxies="10.0.0.0/8, ::1")
    assert isinstance(opts, GatewayOptions)
    assert opts.trusted_proxies == [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert opts.max_body_size == 10 * 1024**2
    assert _opts(control_plane="https://cp.example.com", token="kdp_x").control_plane == "https://cp.example.com"
    assert _opts(config=Path("x.json"), redis_url="rediss://cache:6380/0").redis_url == "rediss://cache:6380/0"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "give --control-plane"),
        ({"config": Path("x.json"), "control_plane": "http://127.0.0.1"}, "excludes"),
        ({"control_plane": "http://cp.example.com", "token": "kdp_x"}, "https"),
        ({"control_plane": "http://127.0.0.1"}, "--token"),
        ({"config": Path("x.json"), "workers": 0}, "--workers"),
        ({"config": Path("x.json"), "trusted_proxies": "nonsense"}, "CIDR"),
        ({"config": Path("x.json"), "max_body_size": "lots"}, "size"),
        ({"config": Path("x.json"), "redis_url": "127.0.0.1:6379"}, "redis://"),
    ],
)
def test_refused(overrides, message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        _opts(**overrides)


def test_registered_command_reports_bad_options() -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    result = CliRunner().invoke(app, ["gateway", "--control-plane", "http://cp.example.com", "--token", "kdp_x"])
    assert result.exit_code == 2
    assert "https" in result.output
