"""`python -m bench [NAME ...] [--quick] [--report PATH] [--strict]` runs the benchmarks (all of
them by default), then writes one report of every measure (`bench.report`) and prints it.

A bench that stops with an error is reported as such and the others still run; the exit status
is then 1. A missed goal is reported, and makes the exit status 1 only with --strict.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

from bench import report

BENCHMARKS = ("hotpaths", "auth", "ratelimit", "outbox", "tracks", "tax", "chat", "start", "mixed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--report",
        type=Path,
        default=report.DEFAULT_PATH,
        metavar="PATH",
        help=f"where to write the Markdown report (default {report.DEFAULT_PATH.name} in bench/)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    load = report.load_average()  # before any bench: how busy the machine was with others
    for name in args.names or BENCHMARKS:
        try:
            importlib.import_module(f"bench.{name}").run(quick=args.quick)
        except (Exception, SystemExit) as exc:  # the others still run; the report says so
            traceback.print_exc()
            report.failed(name, str(exc) or type(exc).__name__)
        sys.stdout.flush()
    mode = "quick" if args.quick else "full"
    text = report.write(args.report, mode=mode, command=report.command_line(), load=load)
    print()
    print(text, end="")
    print(f"(written to {args.report})")
    rows = report.rows()
    if any(row.value is None for row in rows) or (
        args.strict and any(row.met is False for row in rows)
    ):
        sys.exit(1)


if __name__ == "__main__":
    main()
