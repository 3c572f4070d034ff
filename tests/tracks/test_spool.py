"""Temporary upload files of processes that died are removed when a process starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backline.tracks.uploads import spool_directory, sweep_spool


def test_a_dead_process_s_files_go_and_a_running_one_s_stay(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True
    )
    running = os.getppid()
    for pid in (int(dead.stdout), running):
        directory = tmp_path / "uploads" / str(pid)
        directory.mkdir(parents=True)
        (directory / ".upload-abc").write_bytes(b"half a file")
    own = spool_directory(tmp_path)  # left by an earlier process with this pid
    own.mkdir(parents=True)
    (own / ".upload-def").write_bytes(b"another half")

    assert sweep_spool(tmp_path) == 2
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [str(running)]
    assert sweep_spool(tmp_path) == 0
    assert sweep_spool(tmp_path / "nothing here") == 0
