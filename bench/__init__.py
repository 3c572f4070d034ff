"""Benchmarks: each measures against a baseline of the same run, prints what it measured, and
records its measures and goals in one report (`bench.report`) that `python -m bench` writes."""
