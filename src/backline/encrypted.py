"""Which columns hold encrypted values, and re-encrypting them all under the newest key.

Each domain registers its tables once, from its models module:

    encrypted.register(TaxForm.__table__, "tin", "details")

`rotate` walks every registered table in batches ordered by ID (keyset pagination: each batch
starts after the last ID of the one before), re-encrypts each value that is not under the ring's
primary key, and commits each batch in its own transaction. Interrupted (a crash, Ctrl-C), it
loses at most the batch in hand; run again, it skips what is already under the newest key, so a
second run over finished work changes nothing. `census` counts the values under each key, for
`backline keys rotate --check`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backline.crypto import KeyRing, Undecryptable, key_id_of


@dataclass(frozen=True)
class EncryptedTable:
    table: Table
    columns: tuple[str, ...]
    id_column: str = "id"

    @property
    def name(self) -> str:
        return self.table.name


_registry: dict[str, EncryptedTable] = {}


def register(table: Table, *columns: str, id_column: str = "id") -> None:
    """Declare `columns` of `table` as sealed values (`KeyRing.seal`) bound to `id_column`."""
    missing = [c for c in (id_column, *columns) if c not in table.c]
    if missing or not columns:
        raise ValueError(f"{table.name} has no column {', '.join(missing) or '(none given)'}")
    entry = EncryptedTable(table, tuple(columns), id_column)
    if _registry.setdefault(table.name, entry) != entry:
        raise ValueError(f"{table.name} is already registered with other columns")


def registered() -> list[EncryptedTable]:
    return list(_registry.values())


@dataclass
class Rotation:
    """What a rotation did: values re-encrypted, values already current, values that failed."""

    rotated: int = 0
    current: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # table, column, row id


async def _batch(
    session: AsyncSession, entry: EncryptedTable, *, after: Any, size: int, lock: bool
) -> Sequence[Row[Any]]:
    """Up to `size` rows (ID first, then the sealed columns) with IDs above `after`."""
    ident = entry.table.c[entry.id_column]
    columns = [entry.table.c[name] for name in entry.columns]
    query = select(ident, *columns).order_by(ident).limit(size)
    if after is not None:
        query = query.where(ident > after)
    if lock and session.get_bind().dialect.name == "postgresql":
        # Held until the batch commits: a concurrent change to one of its rows waits for it.
        query = query.with_for_update(of=entry.table)
    return (await session.execute(query)).all()


async def rotate(
    sessionmaker: async_sessionmaker[AsyncSession],
    ring: KeyRing,
    *,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> Rotation:
    """Re-encrypt every registered value under `ring.primary`, one committed batch at a time.

    `progress` is called with each batch's row count once that batch has committed."""
    result = Rotation()
    for entry in registered():
        ident = entry.table.c[entry.id_column]
        statement = (
            update(entry.table)
            .where(ident == bindparam("_row_id"))
            .values({name: bindparam(f"_{name}") for name in entry.columns})
        )
        last: Any = None
        while True:
            async with sessionmaker() as session, session.begin():
                rows = await _batch(session, entry, after=last, size=batch_size, lock=True)
                changes = [c for row in rows if (c := _reseal(ring, entry, row, result))]
                if changes:
                    await (await session.connection()).execute(statement, changes)
            if not rows:
                break
            last = rows[-1][0]
            if progress is not None:
                progress(len(rows))
    return result


def _reseal(
    ring: KeyRing, entry: EncryptedTable, row: Row[Any], result: Rotation
) -> dict[str, Any] | None:
    """A row's new values when any of them is under an older key; None when all are current."""
    row_id, values = row[0], tuple[bytes | None, ...](row[1:])
    new: dict[str, Any] = {"_row_id": row_id}
    stale = False
    for name, sealed in zip(entry.columns, values, strict=True):
        new[f"_{name}"] = sealed
        if sealed is None:
            continue
        if ring.is_current(sealed):
            result.current += 1
            continue
        where = {"table": entry.name, "column": name, "row_id": row_id}
        try:
            new[f"_{name}"] = ring.seal(ring.open(sealed, **where), **where)
        except Undecryptable:
            result.failed.append((entry.name, name, str(row_id)))
            continue
        result.rotated += 1
        stale = True
    return new if stale else None


async def count_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Rows in every registered table, for a progress bar's length."""
    from sqlalchemy import func

    total = 0
    async with sessionmaker() as session:
        for entry in registered():
            total += await session.scalar(select(func.count()).select_from(entry.table)) or 0
    return total


async def census(
    sessionmaker: async_sessionmaker[AsyncSession], *, batch_size: int = 1000
) -> dict[tuple[str, str], Counter[str]]:
    """For each registered (table, column): how many values are under each key ID."""
    found: dict[tuple[str, str], Counter[str]] = {}
    for entry in registered():
        counts = {name: Counter[str]() for name in entry.columns}
        last: Any = None
        while True:
            async with sessionmaker() as session:
                rows = await _batch(session, entry, after=last, size=batch_size, lock=False)
            if not rows:
                break
            last = rows[-1][0]
            for row in rows:
                cells: tuple[bytes | None, ...] = tuple(row[1:])
                for name, sealed in zip(entry.columns, cells, strict=True):
                    if sealed is not None:
                        counts[name][key_id_of(sealed) or "(malformed)"] += 1
        for name, counter in counts.items():
            found[(entry.name, name)] = counter
    return found
