"""`keystile dataplane token create` and `keystile dataplane snapshot --output FILE` (gateway.md §2.2)."""

from __future__ import annotations

import stat

from typer.testing import CliRunner

from keystile.cli import app
from keystile.domain.snapshot import parse_snapshot


def test_token_create_and_snapshot_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYSTILE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    made = runner.invoke(app, ["dataplane", "token", "create", "--name", "edge"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("kdp_") and len(token) == 47
    again = runner.invoke(app, ["dataplane", "token", "create", "--name", "edge"])
    assert again.exit_code == 2 and "already exists" in again.output
    out = tmp_path / "snap.json"
    out.write_text("old")
    out.chmod(0o644)
    written = runner.invoke(app, ["dataplane", "snapshot", "--output", str(out)])
    assert written.exit_code == 0, written.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    snap = parse_snapshot(out.read_bytes())
    assert snap.version >= 1 and snap.routes == [] and snap.shared_cache_key
