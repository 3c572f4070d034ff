"""One benchmark report: every bench records its measures here, and `python -m bench` writes
them all as one Markdown table (to `bench/REPORT.md` by default, and to standard output).

A bench records one row per measure from its `run`, beside or instead of printing it:

    from bench import report

    report.record(
        bench="auth",
        measure="GET /api/me against a bare route",
        value=me_rate,
        unit="req/s",
        baseline=bare_rate,  # measured in the same run, in the same unit
        ratio=median(paired),  # optional: value / baseline when left out
        goal=report.at_least(0.30, of="ratio"),
        note="medians of 60 alternating rounds",
    )
    report.record(bench="ratelimit", measure="one check, p50", value=0.21, unit="ms",
                  goal=report.below(0.3))

* `value` is the measure, in `unit`; `baseline` what the same run measured to compare it
  with (None: no baseline); `ratio` is `value / baseline` unless given (give it when the bench
  pairs rounds and takes the median of their ratios, which is steadier than a ratio of medians).
* `goal` is a bound on the value (the default) or on the ratio (`of="ratio"`), made by
  `at_least`, `above`, `at_most`, `below` or `equal`; whether it is met is then worked out.
  A goal no bound expresses is `stated("text")`, with `met=` given. No goal: reported only.
* `note` is a short remark (the spread, a count, how it was measured).

`python -m bench` calls `failed(bench, error)` for a bench that stops with an error, and at the
end `write(path, mode=...)`, which renders the rows recorded so far (`render` is the same as
text, for tests) with the date, the machine's core count, the Python version and the mode
(quick or full).
"""

from __future__ import annotations

import datetime
import math
import operator
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_PATH = Path(__file__).with_name("REPORT.md")
Of = Literal["value", "ratio"]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}


@dataclass(frozen=True)
class Goal:
    """A bound on a row's value or ratio (`op` one of >=, >, <=, <, =), or a stated goal
    (`op` empty, `text` saying it) whose outcome the bench decides."""

    op: str
    bound: float = 0.0
    of: Of = "value"
    text: str = ""

    def judge(self, value: float, ratio: float | None) -> bool | None:
        """Whether the goal is met; None when it cannot be judged here."""
        if not self.op:
            return None
        subject = value if self.of == "value" else ratio
        if subject is None or math.isnan(subject):
            return False  # a ratio without its baseline, or nothing measured: not met
        return _OPERATORS[self.op](subject, self.bound)


def at_least(bound: float, *, of: Of = "value") -> Goal:
    return Goal(">=", bound, of)


def above(bound: float, *, of: Of = "value") -> Goal:
    return Goal(">", bound, of)


def at_most(bound: float, *, of: Of = "value") -> Goal:
    return Goal("<=", bound, of)


def below(bound: float, *, of: Of = "value") -> Goal:
    return Goal("<", bound, of)


def equal(bound: float, *, of: Of = "value") -> Goal:
    return Goal("=", bound, of)


def stated(text: str) -> Goal:
    return Goal("", text=text)


@dataclass(frozen=True)
class Row:
    bench: str
    measure: str
    value: float | None  # None: the bench failed before measuring
    unit: str = ""
    baseline: float | None = None
    ratio: float | None = None
    goal: Goal | None = None
    met: bool | None = None  # None: no goal
    note: str = ""

    @property
    def result(self) -> str:
        if self.value is None:
            return "**failed**"
        if self.met is None:
            return ""
        return "met" if self.met else "**missed**"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)


_REPORT = Report()


def record(
    *,
    bench: str,
    measure: str,
    value: float,
    unit: str = "",
    baseline: float | None = None,
    ratio: float | None = None,
    goal: Goal | None = None,
    met: bool | None = None,
    note: str = "",
) -> Row:
    """Record one measure of this run (see the module docstring) and return its row."""
    if ratio is None and baseline:
        ratio = value / baseline
    if met is None and goal is not None:
        met = goal.judge(value, ratio)
        if met is None:
            raise ValueError(f"{bench}: the stated goal {goal.text!r} needs met=")
    row = Row(bench, measure, value, unit, baseline, ratio, goal, met, note)
    _REPORT.rows.append(row)
    return row


def failed(bench: str, error: str) -> Row:
    """Record that a bench stopped before recording all it measures."""
    row = Row(bench, "(the bench stopped)", None, note=error)
    _REPORT.rows.append(row)
    return row


def rows() -> list[Row]:
    """The rows recorded so far, in order."""
    return list(_REPORT.rows)


def clear() -> None:
    _REPORT.rows.clear()


# ----------------------------------------------------------------------------- rendering


def number(value: float) -> str:
    """Three significant figures or so, with thousands separated."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    size = abs(value)
    if size >= 100 or isinstance(value, int):
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def percent(value: float) -> str:
    return f"{value:.1%}" if abs(value) < 10 else f"{value:,.0%}"


def _with_unit(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{number(value)} {unit}".rstrip()


def _goal(goal: Goal | None, unit: str) -> str:
    if goal is None:
        return ""
    if not goal.op:
        return goal.text
    if goal.of == "ratio":  # a goal of 95% reads 95%, a measured 95.0% reads so
        return f"ratio {goal.op} {goal.bound * 100:g}%"
    return f"{goal.op} {number(goal.bound)} {unit}".rstrip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def cores() -> int:
    """The cores this process may run on (the affinity mask: what a container grants)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Machine:
    cores: int
    python: str
    system: str
    date: str
    load: float | None = None  # the load average (1 min) when the run began: others' work

    @classmethod
    def this(cls, *, load: float | None = None) -> Machine:
        now = datetime.datetime.now(datetime.UTC)
        return cls(
            cores=cores(),
            python=platform.python_version(),
            system=f"{platform.system()} {platform.machine()}",
            date=now.strftime("%Y-%m-%d %H:%M UTC"),
            load=load,
        )


def load_average() -> float | None:
    """The 1-minute load average, where the system tells it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


HEADER = ("bench", "measure", "value", "baseline", "ratio", "goal", "result", "note")


def render(rows: Sequence[Row], *, mode: str, machine: Machine, command: str = "") -> str:
    """The report as Markdown: what was run where, a tally of the goals, then the table."""
    met = sum(row.met is True for row in rows)
    missed = sum(row.met is False for row in rows)
    stopped = sorted({row.bench for row in rows if row.value is None})
    unjudged = sum(row.met is None and row.value is not None for row in rows)
    tally = f"{met} goals met, {missed} missed, {unjudged} not judged"
    lines = [
        "# Benchmark report",
        "",
        f"- date: {machine.date}",
        f"- machine: {machine.cores} cores, {machine.system}"
        + ("" if machine.load is None else f"; load average {machine.load:.1f} as the run began"),
        f"- Python: {machine.python}",
        f"- run: {mode}" + (f" (`{command}`)" if command else ""),
        f"- {tally}" + (f"; benches that stopped: {', '.join(stopped)}" if stopped else ""),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|---|--:|--:|--:|---|---|---|",
    ]
    for row in rows:
        cells = (
            row.bench,
            row.measure,
            _with_unit(row.value, row.unit),
            _with_unit(row.baseline, row.unit),
            "—" if row.ratio is None else percent(row.ratio),
            _goal(row.goal, row.unit),
            row.result,
            row.note,
        )
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write(path: Path | None, *, mode: str, command: str = "", load: float | None = None) -> str:
    """Render every row recorded so far, write it to `path` (unless None) and return it;
    `load` is the load average when the run began (`load_average()`)."""
    text = render(rows(), mode=mode, machine=Machine.this(load=load), command=command)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text


def command_line() -> str:
    return " ".join(["python -m bench", *sys.argv[1:]])
