"""`python -m bench [NAME ...] [--quick]` runs the benchmarks (all of them by default)."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = ("hotpaths", "auth", "ratelimit", "outbox", "tracks", "tax", "chat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for name in args.names or BENCHMARKS:
        importlib.import_module(f"bench.{name}").run(quick=args.quick)


if __name__ == "__main__":
    main()
