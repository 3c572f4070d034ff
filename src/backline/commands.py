"""What every `backline` command shares: loading settings, and refusing in one line each.

Configuration problems are reported as one line per problem, naming the variable, with exit
status 2; nothing starts.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError

from backline.config import ConfigError, Settings


def fail(lines: list[str], status: int = 2) -> NoReturn:
    for line in lines:
        typer.echo(f"backline: {line}", err=True)
    raise typer.Exit(status)


def load_settings(*, startable: bool = True) -> Settings:
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


def _describe(error: object) -> str:
    assert isinstance(error, dict)
    loc = error.get("loc") or ("?",)
    name = str(loc[0])
    variable = name if name.startswith("BACKLINE_") else f"BACKLINE_{name.upper()}"
    return f"{variable} is invalid: {error.get('msg')}"
