"""Signing-key rotation and restarts of a running built-in IdP (in-process uvicorn on a loopback port)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import typer
from joserfc import jwt
from joserfc.jwk import KeySet
from typer.testing import CliRunner

from keystile.idp.cli import register as register_idp_cli
from keystile.idp.keys import load_keys, rotate_keys

MACHINE = {"client_name": "Rotation", "grant_types": ["client_credentials"], "response_types": [], "scope": "read"}


def _register(http: httpx.Client, issuer: str, iat: str) -> dict:
    response = http.post(f"{issuer}/register", json=MACHINE, headers={"Authorization": f"Bearer {iat}"})
    assert response.status_code == 201, response.text
    return response.json()


def _token(http: httpx.Client, issuer: str, client: dict) -> str:
    response = http.post(
        f"{issuer}/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _cli() -> typer.Typer:
    root = typer.Typer()
    register_idp_cli(root)
    return root


def test_rotate_keys_while_running_keeps_old_tokens_verifiable(start_idp):
    idp = start_idp()
    with httpx.Client(timeout=10.0) as http:
        client = _register(http, idp.issuer, idp.facts.initial_access_token)
        old_token = _token(http, idp.issuer, client)
        old_kid = jwt.decode(old_token, KeySet.import_key_set(http.get(f"{idp.issuer}/jwks").json())).header["kid"]

        result = CliRunner().invoke(_cli(), ["idp", "rotate-keys", "--data-dir", str(idp.config.data_dir)])
        assert result.exit_code == 0, result.output
        assert "new signing key" in result.output

        new_token = _token(http, idp.issuer, client)
        published = http.get(f"{idp.issuer}/jwks").json()
        keys = KeySet.import_key_set(published)
        kids = [k["kid"] for k in published["keys"]]
        new_kid = jwt.decode(new_token, keys).header["kid"]
        assert new_kid != old_kid
        assert sorted(kids) == sorted([old_kid, new_kid])
        assert jwt.decode(old_token, keys).claims["client_id"] == client["client_id"]  # still verifies

        auth = (client["client_id"], client["client_secret"])
        assert http.post(f"{idp.issuer}/introspect", data={"token": old_token}, auth=auth).json()["active"] is True
        assert http.post(f"{idp.issuer}/introspect", data={"token": new_token}, auth=auth).json()["active"] is True


def test_retired_key_leaves_the_jwks_after_the_token_lifetime(start_idp):
    idp = start_idp(access_token_ttl=60)
    data_dir = idp.config.data_dir
    with httpx.Client(timeout=10.0) as http:
        first = http.get(f"{idp.issuer}/jwks").json()["keys"][0]["kid"]
        # retire the first key as if it happened long ago: rotate with a clock 200 s back (ttl 60 + leeway 60)
        second = rotate_keys(data_dir, 60, now=time.time() - 200)
        kids = [k["kid"] for k in http.get(f"{idp.issuer}/jwks").json()["keys"]]
        assert kids == [second.kid]
        assert first in [k.kid for k in load_keys(data_dir)]  # still in the file until the next rotation

        third = rotate_keys(data_dir, 60)
        kids = [k["kid"] for k in http.get(f"{idp.issuer}/jwks").json()["keys"]]
        assert sorted(kids) == sorted([second.kid, third.kid])  # `second` retired just now: still published
        assert sorted(k.kid for k in load_keys(data_dir)) == sorted(kids)  # `first` pruned from the file


def test_restart_keeps_clients_secrets_and_keys(start_idp, tmp_path):
    data_dir = tmp_path / "shared"
    first = start_idp(data_dir=data_dir)
    with httpx.Client(timeout=10.0) as http:
        client = _register(http, first.issuer, first.facts.initial_access_token)
        token = _token(http, first.issuer, client)

    second = start_idp(data_dir=data_dir)  # another process would do the same: same data dir, new port
    assert second.facts.initial_access_token == first.facts.initial_access_token
    assert second.facts.admin_client_secret == first.facts.admin_client_secret
    with httpx.Client(timeout=10.0) as http:
        assert _token(http, second.issuer, client)
        keys = KeySet.import_key_set(http.get(f"{second.issuer}/jwks").json())
        assert jwt.decode(token, keys).claims["client_id"] == client["client_id"]


def test_configured_iat_and_admin_secret_replace_generated_ones(start_idp, tmp_path):
    data_dir = tmp_path / "configured"
    generated = start_idp(data_dir=data_dir)
    configured = start_idp(
        data_dir=data_dir,
        initial_access_tokens=("static-iat-one-0123456789", "static-iat-two-0123456789"),
        admin_client_secret="admin-secret-0123456789",
    )
    assert configured.facts.initial_access_token == "static-iat-one-0123456789"
    with httpx.Client(timeout=10.0) as http:
        for iat in ("static-iat-one-0123456789", "static-iat-two-0123456789"):
            _register(http, configured.issuer, iat)
        old = http.post(
            f"{configured.issuer}/register",
            json=MACHINE,
            headers={"Authorization": f"Bearer {generated.facts.initial_access_token}"},
        )
        assert old.status_code == 401
        minted = http.post(
            f"{configured.issuer}/token",
            data={"grant_type": "client_credentials", "scope": "dcr"},
            auth=(configured.facts.admin_client_id, "admin-secret-0123456789"),
        )
        assert minted.status_code == 200


def test_rotate_keys_refuses_a_folder_without_keys(tmp_path):
    result = CliRunner().invoke(_cli(), ["idp", "rotate-keys", "--data-dir", str(tmp_path / "typo")])
    assert result.exit_code == 1
    assert "is it the data dir of a keystile idp" in result.output
    assert not (tmp_path / "typo").exists()


def test_cli_help_lists_serve_and_rotate_keys():
    result = subprocess.run(
        [sys.executable, "-m", "keystile.idp", "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert "serve" in result.stdout
    assert "rotate-keys" in result.stdout
