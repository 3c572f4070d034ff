"""The directory `serve --workers N` shares its workers' metrics through, and the reaping of
the live gauges of workers that died."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from backline.metrics.processes import ENV, forget_this_process, reap, shared_by_workers

WRITE_A_LIVE_GAUGE = """
from prometheus_client import Counter, Gauge
Gauge("probe_in_use", "probe", multiprocess_mode="livesum").set(3)
Counter("probe_done", "probe").inc()
"""


def dead_process(directory: Path) -> int:
    """A process that wrote a live gauge and a counter in `directory`, then ended."""
    env = {**os.environ, ENV: str(directory)}
    done = subprocess.run([sys.executable, "-c", WRITE_A_LIVE_GAUGE], env=env, check=True)
    assert done.returncode == 0
    files = sorted(path.name for path in directory.iterdir())
    pids = {int(name.rsplit("_", 1)[1].removesuffix(".db")) for name in files}
    assert len(pids) == 1
    return pids.pop()


@pytest.mark.slow
def test_reaping_drops_the_live_gauges_of_dead_processes_only(tmp_path: Path) -> None:
    pid = dead_process(tmp_path)
    alive = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    alive.write_bytes(b"")
    assert (tmp_path / f"gauge_livesum_{pid}.db").exists()
    assert reap(tmp_path) == [pid]
    assert not (tmp_path / f"gauge_livesum_{pid}.db").exists()
    assert (tmp_path / f"counter_{pid}.db").exists()  # its counts stay in the sums
    assert alive.exists()
    assert reap(tmp_path) == []


def test_a_process_stopping_drops_its_own_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = [tmp_path / f"gauge_{mode}_{os.getpid()}.db" for mode in ("livesum", "livemax")]
    kept = [tmp_path / f"counter_{os.getpid()}.db", tmp_path / "gauge_livesum_1.db"]
    for path in [*mine, *kept]:
        path.write_bytes(b"")
    monkeypatch.setenv(ENV, str(tmp_path))
    forget_this_process()
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_one_process_shares_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with shared_by_workers(1) as directory:
        assert directory is None
        assert ENV not in os.environ


@pytest.mark.slow
def test_workers_get_a_fresh_directory_for_the_run_reaped_then_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "metrics"
    base.mkdir()
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    monkeypatch.delenv(ENV, raising=False)
    with shared_by_workers(3) as directory:
        assert directory is not None
        assert directory.parent == base
        assert os.environ[ENV] == str(directory)
        assert list(directory.iterdir()) == []
        pid = dead_process(directory)
        for _ in range(100):  # the reaper looks every second: wait for it, bounded
            if not (directory / f"gauge_livesum_{pid}.db").exists():
                break
            time.sleep(0.1)
        assert not (directory / f"gauge_livesum_{pid}.db").exists()
        assert (directory / f"counter_{pid}.db").exists()
    assert not directory.exists()
    assert list(base.iterdir()) == []
    assert ENV not in os.environ
