"""The benchmark report: rows recorded by the benches, judged and written as one Markdown table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bench import report

MACHINE = report.Machine(
    cores=2, python="3.11.9", system="Linux x86_64", date="2026-12-03 10:00 UTC"
)


@pytest.fixture(autouse=True)
def empty() -> Iterator[None]:
    report.clear()
    yield
    report.clear()


def table(text: str) -> list[list[str]]:
    """The table's rows (header and separator left out), cell by cell."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def test_a_ratio_goal_is_judged_on_the_ratio_of_value_to_baseline() -> None:
    met = report.record(
        bench="auth",
        measure="GET /api/me against a bare route",
        value=1500,
        unit="req/s",
        baseline=4000,
        goal=report.at_least(0.30, of="ratio"),
    )
    missed = report.record(
        bench="ratelimit",
        measure="limited against unlimited",
        value=3000,
        unit="req/s",
        baseline=4000,
        goal=report.at_least(0.85, of="ratio"),
    )
    assert met.ratio == pytest.approx(0.375)
    assert met.met is True
    assert missed.ratio == pytest.approx(0.75)
    assert missed.met is False


def test_a_given_ratio_is_kept_and_judged() -> None:
    # The median of paired rounds, not the ratio of the medians.
    row = report.record(
        bench="tax",
        measure="form against me",
        value=900,
        unit="req/s",
        baseline=1000,
        ratio=0.65,
        goal=report.at_least(0.70, of="ratio"),
    )
    assert row.ratio == 0.65
    assert row.met is False


@pytest.mark.parametrize(
    ("goal", "value", "met"),
    [
        (report.below(0.3), 0.29, True),
        (report.below(0.3), 0.3, False),
        (report.at_most(20), 20, True),
        (report.above(0), 0, False),
        (report.at_least(5), 5, True),
        (report.equal(0), 0, True),
        (report.equal(0), 1, False),
        (report.below(50), float("nan"), False),
    ],
)
def test_an_absolute_goal_is_judged_on_the_value(
    goal: report.Goal, value: float, met: bool
) -> None:
    assert report.record(bench="b", measure="m", value=value, goal=goal).met is met


def test_a_ratio_goal_without_a_baseline_is_missed() -> None:
    row = report.record(bench="b", measure="m", value=5, goal=report.at_least(0.9, of="ratio"))
    assert row.ratio is None
    assert row.met is False


def test_a_stated_goal_needs_its_outcome() -> None:
    with pytest.raises(ValueError, match="needs met="):
        report.record(bench="b", measure="m", value=1, goal=report.stated("it works"))
    row = report.record(bench="b", measure="m", value=1, goal=report.stated("it works"), met=True)
    assert row.met is True


def test_the_table_shows_each_measure_its_baseline_ratio_goal_and_outcome() -> None:
    report.record(
        bench="auth",
        measure="logins against the sign-in floor (bench.floor)",
        value=18.25,
        unit="/s",
        baseline=19.0,
        ratio=0.9605,
        goal=report.at_least(0.95, of="ratio"),
        note="each against the raw rate of its own rounds",
    )
    report.record(
        bench="ratelimit",
        measure="one check, p50",
        value=0.3412,
        unit="ms",
        baseline=0.1,
        goal=report.below(0.3),
    )
    report.record(bench="outbox", measure="delivery, 1 worker", value=1234.5, unit="msg/s")
    report.record(bench="mixed", measure="errors", value=0, goal=report.equal(0))
    report.failed("chat", "bench: the server did not start")

    text = report.render(report.rows(), mode="quick", machine=MACHINE, command="python -m bench")

    assert text.startswith("# Benchmark report\n")
    assert "- machine: 2 cores, Linux x86_64\n" in text
    loaded = report.Machine(2, "3.11.9", "Linux x86_64", "2026-12-03 10:00 UTC", load=3.04)
    busy = report.render(report.rows(), mode="quick", machine=loaded)
    assert "- machine: 2 cores, Linux x86_64; load average 3.0 as the run began\n" in busy
    assert "- date: 2026-12-03 10:00 UTC\n" in text
    assert "- Python: 3.11.9\n" in text
    assert "- run: quick (`python -m bench`)\n" in text
    assert "- 2 goals met, 1 missed, 1 not judged; benches that stopped: chat\n" in text
    header = "| bench | measure | value | baseline | ratio | goal | result | note |"
    assert header in text.splitlines()
    assert table(text) == [
        [
            "auth",
            "logins against the sign-in floor (bench.floor)",
            "18.2 /s",
            "19.0 /s",
            "96.0%",
            "ratio >= 95%",
            "met",
            "each against the raw rate of its own rounds",
        ],
        [
            "ratelimit",
            "one check, p50",
            "0.341 ms",
            "0.1 ms",
            "341.2%",
            "< 0.3 ms",
            "**missed**",
            "",
        ],
        ["outbox", "delivery, 1 worker", "1,234 msg/s", "—", "—", "", "", ""],
        ["mixed", "errors", "0", "—", "—", "= 0", "met", ""],
        [
            "chat",
            "(the bench stopped)",
            "—",
            "—",
            "—",
            "",
            "**failed**",
            "bench: the server did not start",
        ],
    ]


def test_cells_cannot_break_the_table() -> None:
    report.record(bench="b", measure="a | b\nc", value=1)
    text = report.render(report.rows(), mode="full", machine=MACHINE)
    assert table(text)[0][1] == "a \\| b c"
    assert "- run: full\n" in text


def test_write_puts_the_report_where_asked(tmp_path: Path) -> None:
    report.record(bench="b", measure="m", value=2, goal=report.at_least(1))
    path = tmp_path / "out" / "REPORT.md"
    text = report.write(path, mode="quick")
    assert path.read_text() == text
    assert f"- machine: {report.cores()} cores" in text
    assert "| b | m | 2 | — | — | >= 1 | met |  |" in text
