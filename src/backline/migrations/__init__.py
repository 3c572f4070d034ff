"""Alembic migrations, run by `backline migrate` (and by `backline serve` on SQLite)."""
