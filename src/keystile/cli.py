"""`keystile` command line (Typer)."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from keystile.domain.errors import ConfigurationError
from keystile.gateway import cli as gateway_cli
from keystile.idp import cli as idp_cli
from keystile.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help="keystile: API developer portal with DCR.")
admin_app = typer.Typer(no_args_is_help=True, help="Admin access.")
admin_token_app = typer.Typer(no_args_is_help=True, help="Admin personal access tokens (kpat_…).")
keys_app = typer.Typer(no_args_is_help=True, help="The secret key that encrypts write-only secrets.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(admin_token_app, name="token")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
dcr_app = typer.Typer(no_args_is_help=True, help="DCR providers: reconcile IdP clients with applications.")
app.add_typer(dcr_app, name="dcr")
gateway_cli.register(app)
idp_cli.register(app)


def _settings() -> Settings:
    try:
        settings = Settings()
        settings.check()
    except ConfigurationError as exc:
        typer.secho(f"keystile: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from exc
    return settings


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"keystile: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


async def _prepare(settings: Settings) -> None:
    from keystile.services import installation
    from keystile.services.context import Runtime
    from keystile.store import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    rt = Runtime.build(settings)
    try:
        await migrate.upgrade(rt.engine)
        await installation.ensure(rt)
    finally:
        await rt.close()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (also done by `serve`)."""
    settings = _settings()
    try:
        asyncio.run(_prepare(settings))
    except ConfigurationError as exc:
        raise _fail(exc) from exc
    typer.echo("database is up to date")


@db_app.command("check")
def db_check() -> None:
    """Fail when the tables in the code and the migrations disagree (`alembic check`)."""
    from keystile.store import migrate as m
    from keystile.store.db import create_engine

    settings = _settings()

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            await m.upgrade(engine)
            await m.check(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("migrations match the models")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    with_idp: Annotated[
        bool,
        typer.Option(
            "--with-idp",
            help="also serve the built-in development IdP at /idp (issuer KEYSTILE_PUBLIC_URL + /idp); not for "
            "production",
        ),
    ] = False,
) -> None:
    """Run the control plane: Management API `/v2`, Portal API `/api/v2`, pages."""
    import uvicorn

    from keystile.app import create_app
    from keystile.logs import configure_logging
    from keystile.services import admin_tokens
    from keystile.services.context import Runtime

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(_prepare(settings))
    except ConfigurationError as exc:
        raise _fail(exc) from exc

    async def first_token() -> str | None:
        rt = Runtime.build(settings)
        try:
            if await admin_tokens.count(rt) == 0:
                return (await admin_tokens.create(rt, "first admin token"))[1]
            return None
        finally:
            await rt.close()

    token = asyncio.run(first_token())
    if token:
        typer.echo(
            "\nFirst start: an admin token was created. It is shown once; store it now:\n\n"
            f"    {token}\n\n"
            f"    export KPAT={token}\n"
            f'    curl -H "Authorization: Bearer $KPAT" http://{host}:{port}/v2/dcr-providers\n',
            err=True,
        )
    app = create_app(settings)
    if with_idp:
        from keystile.idp import IdpConfig, create_idp_app

        issuer = f"{settings.public_url}/idp"
        app.mount("/idp", create_idp_app(IdpConfig(data_dir=settings.data_dir / "idp", issuer=issuer)))
        typer.echo(
            f"built-in development IdP at {issuer} (initial access token and admin client in "
            f"{settings.data_dir / 'idp' / 'idp.json'})",
            err=True,
        )
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


@admin_token_app.command("create")
def admin_token_create(name: Annotated[str, typer.Option("--name", help="what the token is for")]) -> None:
    """Create an admin token; it is printed once and stored only as a hash."""
    from keystile.services import admin_tokens
    from keystile.services.context import Runtime

    settings = _settings()

    async def run() -> str:
        await _prepare(settings)
        rt = Runtime.build(settings)
        try:
            return (await admin_tokens.create(rt, name))[1]
        finally:
            await rt.close()

    try:
        token = asyncio.run(run())
    except ConfigurationError as exc:
        raise _fail(exc) from exc
    typer.echo(token)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="fresh folder for the demo's state (wiped at start)")] = Path(
        "keystile-demo"
    ),
    free_ports: Annotated[bool, typer.Option(help="pick free ports instead of 8080/8000/9400/9500/8100")] = False,
    okta_issuer: Annotated[str | None, typer.Option(help="run against a real Okta custom authorization server")] = None,
    okta_token: Annotated[
        str | None, typer.Option(envvar="KEYSTILE_DEMO_OKTA_TOKEN", help="its API token (prefer the env var)")
    ] = None,
) -> None:
    """Run the whole flow on one machine: control plane, built-in IdP, gateway and a sample upstream, seeded."""
    from keystile.demo.runner import DemoOptions, run_demo

    if (okta_issuer is None) != (okta_token is None):
        raise _fail(ConfigurationError("--okta-issuer and --okta-token go together"))
    options = DemoOptions(
        data_dir=data_dir, free_ports=free_ports, okta_issuer=okta_issuer, okta_token=okta_token, echo=typer.echo
    )
    raise typer.Exit(run_demo(options))


@dcr_app.command("reconcile")
def dcr_reconcile(
    provider: Annotated[str, typer.Option("--provider", help="the DCR provider id")],
    delete: Annotated[bool, typer.Option("--delete", help="deregister orphans older than 10 minutes")] = False,
) -> None:
    """List IdP clients tagged by keystile that match no application (and delete them with --delete)."""
    import uuid

    from keystile.domain.errors import KeystileError
    from keystile.services import reconcile
    from keystile.services.context import Actor, Runtime

    settings = _settings()
    try:
        provider_id = uuid.UUID(provider)
    except ValueError as exc:
        raise _fail(ConfigurationError(f"--provider must be a provider id (a UUID), not {provider!r}")) from exc

    async def run() -> reconcile.ReconcileReport:
        rt = Runtime.build(settings)
        try:
            async with rt.unit(Actor("system", None, "keystile dcr reconcile")) as ctx:
                return await reconcile.reconcile(ctx, provider_id, delete=delete)
        finally:
            await rt.close()

    try:
        report = asyncio.run(run())
    except KeystileError as exc:
        raise _fail(exc) from exc
    typer.echo(f"orphaned clients at the IdP: {len(report.orphans)}")
    for c in report.orphans:
        created = c.created_at.isoformat() if c.created_at else "unknown"
        typer.echo(f"  {c.client_id}  {c.name!r}  tagged application {c.application_id}  created {created}")
    typer.echo(f"applications whose client is missing at the IdP: {len(report.missing)}")
    for app_id, client_id in report.missing:
        typer.echo(f"  application {app_id}  client {client_id}")
    if delete:
        typer.echo(f"deleted: {len(report.deleted)}")
        for client_id, why in report.kept:
            typer.echo(f"  kept {client_id}: {why}")


@admin_token_app.command("list")
def admin_token_list() -> None:
    """List admin tokens (ids, names, dates; never the tokens)."""
    from keystile.services import admin_tokens
    from keystile.services.context import Runtime

    settings = _settings()

    async def run() -> list[dict[str, str | None]]:
        await _prepare(settings)
        rt = Runtime.build(settings)
        try:
            return await admin_tokens.list_tokens(rt)
        finally:
            await rt.close()

    for t in asyncio.run(run()):
        state = f"revoked {t['revoked_at']}" if t["revoked_at"] else f"last used {t['last_used_at'] or 'never'}"
        typer.echo(f"{t['id']}  {t['name']}  created {t['created_at']}  {state}")


@admin_token_app.command("revoke")
def admin_token_revoke(token_id: Annotated[str, typer.Argument(help="the token's id (see `list`)")]) -> None:
    """Revoke an admin token; its API calls and admin page sessions are refused from now on."""
    import uuid

    from keystile.domain.errors import KeystileError
    from keystile.services import admin_tokens
    from keystile.services.context import Runtime

    settings = _settings()
    try:
        tid = uuid.UUID(token_id)
    except ValueError as exc:
        raise _fail(ConfigurationError(f"{token_id!r} is not a token id (a UUID)")) from exc

    async def run() -> None:
        rt = Runtime.build(settings)
        try:
            await admin_tokens.revoke(rt, tid)
        finally:
            await rt.close()

    try:
        asyncio.run(run())
    except KeystileError as exc:
        raise _fail(exc) from exc
    typer.echo(f"revoked {tid}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random key for KEYSTILE_SECRET_KEY."""
    typer.echo(base64.b64encode(os.urandom(32)).decode())


@keys_app.command("rotate")
def keys_rotate(
    new_key_env: Annotated[str, typer.Option("--new-key-env", help="environment variable holding the new key")],
) -> None:
    """Re-encrypt every stored secret under a new key. Afterwards set KEYSTILE_SECRET_KEY to the new key
    (keep the old one in KEYSTILE_OLD_SECRET_KEYS until every replica runs with the new one)."""
    from keystile.services import keys

    settings = _settings()
    value = os.environ.get(new_key_env)
    if not value:
        raise _fail(ConfigurationError(f"the environment variable {new_key_env} is empty or unset"))
    try:
        count = asyncio.run(keys.rotate(settings, value, new_key_env))
    except ConfigurationError as exc:
        raise _fail(exc) from exc
    typer.echo(f"re-encrypted {count} secrets; now set KEYSTILE_SECRET_KEY to the value of {new_key_env}")


# ---- data plane (contracts/gateway.md §2.2, §8) ---------------------------------------------------------

dataplane_app = typer.Typer(no_args_is_help=True, help="Data-plane tokens and snapshots.")
dataplane_token_app = typer.Typer(no_args_is_help=True, help="Data-plane tokens (kdp_…) for gateways.")
app.add_typer(dataplane_app, name="dataplane")
dataplane_app.add_typer(dataplane_token_app, name="token")


@dataplane_token_app.command("create")
def dataplane_token_create(name: Annotated[str, typer.Option("--name", help="which gateway(s) it is for")]) -> None:
    """Create a data-plane token; it is printed once and stored only as a hash."""
    from keystile.domain.errors import KeystileError
    from keystile.services import dataplane
    from keystile.services.context import SYSTEM, Runtime

    settings = _settings()

    async def run() -> str:
        await _prepare(settings)
        rt = Runtime.build(settings)
        try:
            async with rt.unit(SYSTEM) as ctx:
                return str((await dataplane.create_token(ctx, {"name": name}))["token"])
        finally:
            await rt.close()

    try:
        token = asyncio.run(run())
    except KeystileError as exc:
        raise _fail(exc) from exc
    typer.echo(token)


@dataplane_app.command("snapshot")
def dataplane_snapshot(
    output: Annotated[Path, typer.Option("--output", help="file to write (mode 0600: it holds session secrets)")],
) -> None:
    """Write the current data-plane snapshot to a file, for `keystile gateway --config FILE`."""
    from keystile.domain.errors import KeystileError
    from keystile.services import dataplane
    from keystile.services.context import Runtime

    settings = _settings()

    async def run() -> bytes:
        await _prepare(settings)
        rt = Runtime.build(settings)
        try:
            return dataplane.encode_snapshot(await dataplane.build_snapshot(rt)).body
        finally:
            await rt.close()

    try:
        body = asyncio.run(run())
    except KeystileError as exc:
        raise _fail(exc) from exc
    target = output.resolve()
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise _fail(exc) from exc
    typer.echo(f"wrote the snapshot ({len(body)} bytes) to {target}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


if __name__ == "__main__":
    main()
