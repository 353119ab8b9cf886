"""`python -m keystile.idp`: the `keystile idp` command group on its own."""

from keystile.idp.cli import build_idp_cli

if __name__ == "__main__":
    build_idp_cli()()
