"""`backline tax purge`: delete the tax forms kept past their retention period."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from backline.commands import configure_logging, load_settings

if TYPE_CHECKING:
    from backline.config import Settings

tax_app = typer.Typer(help="Tax forms.", no_args_is_help=True)


@tax_app.command("purge")
def purge() -> None:
    """Delete superseded tax forms older than BACKLINE_TAX_RETENTION_YEARS."""
    settings = load_settings()
    configure_logging(settings)
    count = asyncio.run(_purge(settings))
    typer.echo(
        f"purged {count} tax form{'s' if count != 1 else ''} superseded more than "
        f"{settings.tax_retention_years} years ago"
    )


async def _purge(settings: Settings) -> int:
    from backline.db import create_engine, create_sessionmaker
    from backline.tax import service

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            return await service.purge(session, years=settings.tax_retention_years)
    finally:
        await engine.dispose()
