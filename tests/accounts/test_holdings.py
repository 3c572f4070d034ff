"""Account deletion and export reach every domain through `accounts.holdings`."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import backline
from backline.accounts import holdings
from backline.accounts.models import User
from backline.storage import Storages

ACCOUNTS = Path(backline.__file__).parent / "accounts"
ABOVE_ACCOUNTS = ("tracks", "artists", "tax", "chat", "web")


def test_accounts_imports_no_domain_above_it() -> None:
    found = []
    for path in ACCOUNTS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            found += [
                f"{path.name}: {m}"
                for m in modules
                if m.split(".")[:2] in (["backline", d] for d in ABOVE_ACCOUNTS)
            ]
    assert found == []


def test_the_application_registers_the_tracks_domain() -> None:
    import backline.app  # noqa: F401 - the import registers each domain

    assert "tracks" in holdings.names()


async def _export(session: AsyncSession, user: User) -> Any:
    return {"n": 1}


async def _erase(session: AsyncSession, user: User, storages: Storages) -> None:
    return None


async def _other_erase(session: AsyncSession, user: User, storages: Storages) -> None:
    return None


def test_a_name_is_held_by_one_domain_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holdings, "_holders", {})
    holdings.register(name="things", export=_export, erase=_erase)
    holdings.register(name="things", export=_export, erase=_erase)  # the same again: harmless
    with pytest.raises(ValueError, match="things"):
        holdings.register(name="things", export=_export, erase=_other_erase)
    assert holdings.names() == ["things"]
