"""Every router is built by `backline.routing.router`, so every JSON route gets its checks; every
dependency is a coroutine, so none costs a worker thread per request."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

import backline
from backline.app import create_app
from backline.config import Settings

SOURCE = Path(backline.__file__).parent


def test_routers_are_only_made_by_the_factory() -> None:
    offenders = [
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if path.name != "routing.py" and re.search(r"\bAPIRouter\(", path.read_text())
    ]
    assert offenders == []


def _api_routes(routes: Any) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI includes routers lazily
        if included is not None:
            yield from _api_routes(included.routes)


def _calls(dependant: Any) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def test_no_dependency_runs_in_a_worker_thread() -> None:
    # FastAPI runs a plain `def` dependency in the thread pool: a thread hop, and a wake-up of
    # the event loop, on every request that uses it.
    app = create_app(Settings(env="test"), configure_logs=False)
    routes = list(_api_routes(app.routes))
    calls = {call for route in routes for call in _calls(route.dependant)}
    assert len(calls) > 5
    in_threads = sorted(
        call.__qualname__
        for call in calls
        if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
    )
    assert in_threads == []
