"""`backline keys generate` and `backline keys rotate [--check]`: the key ring for data at rest.

Rotating keys, start to finish:

1. `backline keys generate` prints a new entry; put it *first* in BACKLINE_ENCRYPTION_KEYS,
   keeping the old entries after it, and restart the app: new values are sealed under it.
2. `backline keys rotate` re-encrypts every stored value under the new key, batch by batch;
   interrupted, run it again and it carries on where it stopped.
3. `backline keys rotate --check` exits 0 once no value is left under an older key; only then
   remove the old entries from the ring.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer

from backline.commands import configure_logging, fail, load_settings

if TYPE_CHECKING:
    from backline.config import Settings
    from backline.encrypted import Rotation

keys_app = typer.Typer(help="The key ring for data at rest.", no_args_is_help=True)


@keys_app.command("generate")
def generate() -> None:
    """Print a new key-ring entry (id:key) to put first in BACKLINE_ENCRYPTION_KEYS."""
    from backline.crypto import generate_entry

    typer.echo(generate_entry())


@keys_app.command("rotate")
def rotate(
    check: Annotated[
        bool,
        typer.Option("--check", help="Change nothing; exit 1 while values remain under old keys."),
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per batch.")] = 500,
) -> None:
    """Re-encrypt every encrypted value under the newest key (the ring's first entry).

    Each batch is committed on its own: after an interruption, run it again to resume."""
    settings = load_settings()
    configure_logging(settings)
    ring = settings.key_ring
    if check:
        left = asyncio.run(_census(settings))
        stale = 0
        for (table, column), counts in sorted(left.items()):
            for key_id, count in sorted(counts.items()):
                if key_id != ring.primary.id:
                    stale += count
                    typer.echo(f"{table}.{column}: {count} under {key_id}", err=True)
        if stale:
            fail([f"{stale} values are still under older keys: run `backline keys rotate`"], 1)
        typer.echo(f"every encrypted value is under {ring.primary.id}")
        return
    result = asyncio.run(_rotate(settings, batch_size))
    for table, column, row_id in result.failed:
        typer.echo(f"undecryptable  {table}.{column} row {row_id}", err=True)
    typer.echo(
        f"re-encrypted {result.rotated} values under {ring.primary.id}; "
        f"{result.current} already were; {len(result.failed)} undecryptable"
    )
    if result.failed:
        raise typer.Exit(1)


async def _census(settings: Settings) -> dict[tuple[str, str], Counter[str]]:
    import backline.models  # noqa: F401 - every domain registers its encrypted columns
    from backline.db import create_engine, create_sessionmaker
    from backline.encrypted import census

    engine = create_engine(settings)
    try:
        return await census(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def _rotate(settings: Settings, batch_size: int) -> Rotation:
    import backline.models  # noqa: F401 - every domain registers its encrypted columns
    from backline.db import create_engine, create_sessionmaker
    from backline.encrypted import count_rows
    from backline.encrypted import rotate as rotate_all

    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        total = await count_rows(sessionmaker)
        with typer.progressbar(length=total, label="Re-encrypting", file=sys.stderr) as bar:
            return await rotate_all(
                sessionmaker, settings.key_ring, batch_size=batch_size, progress=bar.update
            )
    finally:
        await engine.dispose()
