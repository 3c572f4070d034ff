"""Every router is built by `backline.routing.router`, so every JSON route gets its checks; every
dependency is a coroutine, so none costs a worker thread per request."""

from __future__ import annotations

import gc
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Form, Request
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile

import backline
from backline.app import create_app
from backline.config import Settings
from backline.errors import install_error_handlers
from backline.routing import router

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


async def _post_a_file(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, files={"file": ("a.bin", b"x" * 10)})


@pytest.mark.anyio
async def test_the_files_of_a_posted_form_are_closed_when_the_request_ends() -> None:
    # A route that parses `request.form()` itself leaves its file parts in temporary files;
    # they are closed by the route's wrapper, not by the garbage collector.
    pages = router(public=True)
    kept: list[Any] = []

    @pages.post("/own")
    async def own(request: Request) -> dict[str, str]:
        kept.append((await request.form())["file"])
        return {}

    app = FastAPI()
    app.include_router(pages)
    assert (await _post_a_file(app, "/own")).status_code == 200
    assert len(kept) == 1
    assert isinstance(kept[0], UploadFile)
    assert kept[0].file.closed


@pytest.mark.anyio
async def test_a_route_taking_form_fields_refuses_a_file_part() -> None:
    # `Form` routes take text: a file part is refused as the form is parsed, before the route
    # runs, and its temporary file is closed (a cut-short part's too: see the portal's tests).
    pages = router(public=True)
    ran: list[str] = []

    @pages.post("/field")
    async def field(name: Annotated[str, Form()] = "") -> dict[str, str]:
        ran.append(name)
        return {}

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(pages)
    refused = await _post_a_file(app, "/field")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_form")
    assert ran == []
    gc.collect()  # an unclosed temporary file warns here, which the test settings make an error
