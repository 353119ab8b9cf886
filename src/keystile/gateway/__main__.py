"""`python -m keystile.gateway …`: the `keystile gateway` command on its own (benchmarks, tests, before wiring)."""

from __future__ import annotations

import typer

from keystile.gateway.cli import register


def main() -> None:
    app = typer.Typer(add_completion=False)
    register(app)

    @app.callback()
    def _root() -> None:
        """keystile data plane."""

    app()


if __name__ == "__main__":
    main()
