"""`keystile idp`: run the built-in development IdP, and rotate its signing keys.

keystile idp [serve] [--host H] [--port P] [--data-dir D] [--issuer URL] ...
keystile idp rotate-keys --data-dir D
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from starlette.applications import Starlette

from keystile.idp.bootstrap import FACTS_FILE, read_facts
from keystile.idp.config import DEFAULT_ADMIN_CLIENT_ID, DEFAULT_API_AUDIENCE, DEFAULT_SCOPES, IdpConfig
from keystile.idp.keys import KEYS_FILE, rotate_keys

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_HOST", "DEFAULT_PORT", "build_idp_cli", "register"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9400
DEFAULT_DATA_DIR = Path("keystile-data/idp")
DEFAULT_TOKEN_TTL = 3600


def _serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_dir: Path = DEFAULT_DATA_DIR,
    issuer: str | None = None,
    api_audience: str = DEFAULT_API_AUDIENCE,
    audiences: tuple[str, ...] = (),
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    token_ttl: int = DEFAULT_TOKEN_TTL,
    initial_access_tokens: tuple[str, ...] = (),
    plain_initial_access_tokens: tuple[str, ...] = (),
    admin_client_id: str = DEFAULT_ADMIN_CLIENT_ID,
    admin_client_secret: str | None = None,
) -> None:
    from keystile.idp.runner import run_idp  # uvicorn only when serving

    def make_config(folder: Path, issuer_url: str) -> IdpConfig:
        return IdpConfig(
            data_dir=folder,
            issuer=issuer_url,
            api_audience=api_audience,
            audiences=audiences,
            scopes=scopes,
            access_token_ttl=token_ttl,
            initial_access_tokens=initial_access_tokens,
            plain_initial_access_tokens=plain_initial_access_tokens,
            admin_client_id=admin_client_id,
            admin_client_secret=admin_client_secret,
        )

    def announce(app: Starlette, config: IdpConfig) -> None:
        typer.echo(f"keystile idp (a development IdP, not for production): issuer {config.issuer}")
        typer.echo(f"initial access token, admin client and audience: {config.data_dir / FACTS_FILE}")

    run_idp(host, port, data_dir, make_config, issuer=issuer, announce=announce)


def build_idp_cli() -> typer.Typer:
    """The `idp` command group (also runnable alone: `python -m keystile.idp`)."""
    idp = typer.Typer(
        name="idp",
        help="The built-in OpenID provider with RFC 7591/7592 registration (for local use, demos and tests).",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @idp.callback()
    def main(ctx: typer.Context) -> None:
        """Without a subcommand: serve with the defaults."""
        if ctx.invoked_subcommand is None:
            _serve()

    @idp.command()
    def serve(
        host: Annotated[str, typer.Option(help="address to listen on")] = DEFAULT_HOST,
        port: Annotated[int, typer.Option(help="port to listen on; 0 = any free port")] = DEFAULT_PORT,
        data_dir: Annotated[Path, typer.Option(help="folder for the store, keys and idp.json")] = DEFAULT_DATA_DIR,
        issuer: Annotated[
            str | None, typer.Option(help="issuer URL (default http://<host>:<port>); https behind a TLS proxy")
        ] = None,
        api_audience: Annotated[str, typer.Option(help="default `aud` of access tokens")] = DEFAULT_API_AUDIENCE,
        audience: Annotated[
            list[str] | None, typer.Option(help="a further audience clients may ask for (repeatable)")
        ] = None,
        scope: Annotated[list[str] | None, typer.Option(help="an API scope (repeatable; default: read, write)")] = None,
        token_ttl: Annotated[int, typer.Option(help="access token lifetime in seconds")] = DEFAULT_TOKEN_TTL,
        initial_access_token: Annotated[
            list[str] | None,
            typer.Option(
                envvar="KEYSTILE_IDP_INITIAL_ACCESS_TOKEN",
                help="a static initial access token (repeatable; default: generated once, kept in idp.json)",
                show_envvar=True,
            ),
        ] = None,
        plain_initial_access_token: Annotated[
            list[str] | None,
            typer.Option(
                envvar="KEYSTILE_IDP_PLAIN_INITIAL_ACCESS_TOKEN",
                help="a static initial access token whose clients keep their secret on PUT (repeatable)",
                show_envvar=True,
            ),
        ] = None,
        admin_client_id: Annotated[str, typer.Option(help="the client that mints IATs with scope dcr")] = (
            DEFAULT_ADMIN_CLIENT_ID
        ),
        admin_client_secret: Annotated[
            str | None,
            typer.Option(
                envvar="KEYSTILE_IDP_ADMIN_CLIENT_SECRET",
                help="its secret (default: generated once, kept in idp.json)",
                show_envvar=True,
            ),
        ] = None,
    ) -> None:
        """Serve the IdP until interrupted; print its issuer and write <data dir>/idp.json."""
        _serve(
            host=host,
            port=port,
            data_dir=data_dir,
            issuer=issuer,
            api_audience=api_audience,
            audiences=tuple(audience or ()),
            scopes=tuple(scope or DEFAULT_SCOPES),
            token_ttl=token_ttl,
            initial_access_tokens=tuple(initial_access_token or ()),
            plain_initial_access_tokens=tuple(plain_initial_access_token or ()),
            admin_client_id=admin_client_id,
            admin_client_secret=admin_client_secret,
        )

    @idp.command("rotate-keys")
    def rotate(
        data_dir: Annotated[Path, typer.Option(help="the data dir of the IdP")] = DEFAULT_DATA_DIR,
        token_ttl: Annotated[
            int | None, typer.Option(help="token lifetime the old key must outlive (default: from idp.json)")
        ] = None,
    ) -> None:
        """Make a new signing key; the old public key stays published until the tokens it signed expire."""
        if not (data_dir / KEYS_FILE).is_file():
            typer.echo(f"no {KEYS_FILE} in {data_dir}: is it the data dir of a keystile idp?", err=True)
            raise typer.Exit(code=1)
        ttl = token_ttl or int(read_facts(data_dir).get("access_token_ttl") or DEFAULT_TOKEN_TTL)
        new = rotate_keys(data_dir, ttl)
        typer.echo(f"new signing key {new.kid}; the previous key stays published for {ttl + 60} s")

    return idp


def register(app: typer.Typer) -> None:
    """Add the `idp` command group to the keystile CLI."""
    app.add_typer(build_idp_cli(), name="idp")
