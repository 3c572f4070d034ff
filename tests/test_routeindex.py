"""The route index skips routers a path cannot be in, and finds every route FastAPI finds."""

from __future__ import annotations

import re
import uuid
from typing import Any, ClassVar

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from starlette.routing import Match

from backline import routeindex
from backline.app import create_app
from backline.config import Settings


class CountedRoute(APIRoute):
    tried: ClassVar[list[str]] = []

    def matches(self, scope: Any) -> tuple[Match, Any]:
        CountedRoute.tried.append(self.path)
        return super().matches(scope)


def _app() -> FastAPI:
    app = FastAPI()
    for prefix in ("/alpha", "/beta", "/gamma"):
        group = APIRouter(prefix=prefix, route_class=CountedRoute)

        @group.get("")
        async def listing() -> list[str]:
            return []

        @group.get("/{item_id:uuid}")
        async def one(item_id: uuid.UUID) -> str:
            return str(item_id)

        @group.post("/{item_id:uuid}/things/")
        async def add(item_id: uuid.UUID) -> str:
            return "added"

        app.include_router(group)
    routeindex.install(app.router)
    return app


async def test_a_path_is_tried_only_against_the_routers_it_can_be_in() -> None:
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        CountedRoute.tried.clear()
        assert (await c.get(f"/gamma/{uuid.uuid4()}")).status_code == 200
        assert CountedRoute.tried
        assert all(p.startswith("/gamma") for p in CountedRoute.tried)
        CountedRoute.tried.clear()
        assert (await c.get("/nowhere")).status_code == 404
        assert CountedRoute.tried == []


async def test_fastapi_answers_as_before_405_redirects_and_404() -> None:
    app = _app()
    item = uuid.uuid4()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        assert (await c.get("/beta")).json() == []
        refused = await c.delete(f"/beta/{item}")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET"
        moved = await c.post(f"/alpha/{item}/things")  # the slash FastAPI adds is found
        assert moved.status_code == 307
        assert moved.headers["location"].endswith(f"/alpha/{item}/things/")
        assert (await c.get("/beta/not-a-uuid")).status_code == 404


async def test_a_route_added_after_the_first_request_is_found() -> None:
    app = FastAPI()
    late = APIRouter(prefix="/late")

    @late.get("/first")
    async def first() -> str:
        return "first"

    app.include_router(late)
    routeindex.install(app.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        assert (await c.get("/late/second")).status_code == 404

        @late.get("/second")
        async def second() -> str:
            return "second"

        assert (await c.get("/late/second")).json() == "second"


def _sample(path: str) -> str:
    values = {"uuid": str(uuid.uuid4()), "int": "7", "path": "a/b.txt", "float": "1.5"}

    def fill(match: re.Match[str]) -> str:
        _, _, convertor = match.group(1).partition(":")
        return values.get(convertor, "x1")

    return re.sub(r"\{([^}]+)\}", fill, path)


def _found(routes: list[Any], scope: dict[str, Any], guarded: bool) -> tuple[int, Match] | None:
    for index, route in enumerate(routes):
        if guarded or not isinstance(route, _IncludedRouter):
            match, _ = route.matches(scope)
        else:
            match, _ = _IncludedRouter.matches(route, scope)  # FastAPI's own, unguarded
        if match != Match.NONE:
            return index, match
    return None


def _paths(routes: list[Any]) -> list[str]:
    found = []
    for route in routes:
        if isinstance(route, _IncludedRouter):
            found += _paths(route.effective_candidates())
        elif isinstance(getattr(route, "path", None), str) and route.path:
            found.append(route.path)
    return found


def test_every_route_of_the_app_is_found_where_fastapi_finds_it() -> None:
    app = create_app(Settings(env="test", database_url="sqlite+aiosqlite:///:memory:"))
    routeindex.install(app.router)
    paths = set(_paths(app.router.routes))
    assert len(paths) > 50
    tried = 0
    for path in sorted(paths):
        concrete = _sample(path)
        for twin in {concrete, concrete.rstrip("/") or "/", concrete + "/", concrete + "/x"}:
            for method in ("GET", "POST", "DELETE"):
                scope = {"type": "http", "path": twin, "root_path": "", "method": method}
                want = _found(app.router.routes, scope, guarded=False)
                assert _found(app.router.routes, scope, guarded=True) == want, (twin, method)
                tried += 1
    assert tried > 500
