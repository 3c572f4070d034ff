"""What every `backline` command shares: loading settings, and refusing in one line each.

Configuration problems are reported as one line per problem, naming the variable, with exit
status 2; nothing starts.

The command line imports only Typer and this module to show its help: everything else
(settings, the database, the app) is imported inside the command that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from backline.config import Settings


def fail(lines: list[str], status: int = 2) -> NoReturn:
    for line in lines:
        typer.echo(f"backline: {line}", err=True)
    raise typer.Exit(status)


def load_settings(*, startable: bool = True) -> Settings:
    # Imported here: pydantic-settings is not needed to show help.
    from pydantic import ValidationError

    from backline.config import ConfigError, Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        fail([_describe(error) for error in exc.errors()])
    if startable:
        try:
            settings.require_startable()
        except ConfigError as exc:
            fail(exc.problems)
    return settings


def configure_logging(settings: Settings) -> None:
    """The logging every command that does work sets up (structlog, imported only then)."""
    from backline.logging import configure_logging as configure

    configure(settings)


def _describe(error: object) -> str:
    assert isinstance(error, dict)
    loc = error.get("loc") or ("?",)
    name = str(loc[0])
    variable = name if name.startswith("BACKLINE_") else f"BACKLINE_{name.upper()}"
    return f"{variable} is invalid: {error.get('msg')}"
