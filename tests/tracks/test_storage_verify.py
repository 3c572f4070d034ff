"""`backline storage verify` (see `backline.storage.verify`) finds damaged and missing objects."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import httpx
import pytest
from typer.testing import CliRunner

from backline.cli import app
from backline.config import Settings
from tests.tracks.conftest import draft, wav


async def test_verify_reports_damage_and_missing_objects(
    client: httpx.AsyncClient,
    artist: dict[str, str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _ in range(3):
        track = await draft(client, artist)
        uploaded = await client.put(
            f"/api/tracks/{track['id']}/audio",
            content=wav(),
            headers={"Content-Type": "audio/wav", **artist},
        )
        assert uploaded.status_code == 200
    monkeypatch.setenv("BACKLINE_ENV", "test")
    monkeypatch.setenv("BACKLINE_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("BACKLINE_STORAGE_DIR", str(settings.effective_storage_dir))
    runner = CliRunner()

    def verify() -> Any:  # the command runs its own event loop: give it a thread
        return anyio.to_thread.run_sync(runner.invoke, app, ["storage", "verify"])

    clean = await verify()
    assert clean.exit_code == 0, clean.output
    assert "checked 3 objects: 0 missing, 0 mismatched" in clean.stdout

    files = sorted(p for p in settings.effective_storage_dir.rglob("*.wav"))
    assert len(files) == 3
    damaged = bytearray(files[0].read_bytes())
    damaged[100] ^= 0xFF
    files[0].write_bytes(bytes(damaged))
    files[1].unlink()
    broken = await verify()
    assert broken.exit_code == 1
    assert "checked 3 objects: 1 missing, 1 mismatched" in broken.stdout
    assert f"mismatch  {files[0].relative_to(settings.effective_storage_dir)}" in broken.stderr
    assert f"missing   {files[1].relative_to(settings.effective_storage_dir)}" in broken.stderr
