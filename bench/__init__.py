"""Benchmarks: each prints its measurements and their ratio to a baseline of the same run."""
