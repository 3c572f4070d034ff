"""Skipping, at a glance, the routers a request's path cannot be in.

FastAPI looks for a request's route by asking every included router in turn whether it holds
one, and each router by trying each of its routes' patterns (a few microseconds apiece, with
the bookkeeping around them). With the portal's pages and every domain's API included, reaching
`POST /api/chat` took some 400 microseconds of trying, more than the rest of the request.

A route without parameters matches its own path alone, and any other route's pattern begins with
its path's literal part, up to its first `{parameter}` (a mount's, with its whole path): a
path that is none of a router's plain paths and starts with none of its literal heads matches
none of its routes. `install` gives each included router of the app a guard that
answers "no match" for such a path before any pattern is tried, and otherwise asks the router
as before: the route chosen, a 405 for a known path, the slash redirect and the 404 are all
FastAPI's own, in FastAPI's order.

The heads are read from the router's effective routes and read again whenever its routes
change (FastAPI's own routes version), so a route added later is never skipped. A router
holding a route with no literal path (a host route, a static front end) is never guarded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRouter, _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import Match, Mount
from starlette.types import Scope

Matches = Callable[[Scope], tuple[Match, Scope]]


@dataclass(frozen=True)
class _Paths:
    exact: frozenset[str]  # the paths of routes without parameters
    heads: tuple[str, ...]  # the literal starts of the others


def _paths(included: _IncludedRouter) -> _Paths | None:
    """The paths the router's routes can match; None if some route's cannot be told."""
    exact: set[str] = set()
    heads: set[str] = set()
    for candidate in included.effective_candidates():
        if isinstance(candidate, _IncludedRouter):
            inner = _paths(candidate)
            if inner is None:
                return None
            exact |= inner.exact
            heads.update(inner.heads)
            continue
        path = candidate.path or getattr(candidate.starlette_route, "path", "")
        if not isinstance(path, str) or not path.startswith("/"):
            return None
        if "{" in path or isinstance(candidate.original_route, Mount):
            heads.add(path.split("{", 1)[0])
        else:
            exact.add(path)
    return _Paths(frozenset(exact), tuple(sorted(heads)))


def _version(router: APIRouter) -> int:
    """FastAPI's count of changes to the router's routes, its included routers' counted in.

    Read as FastAPI reads it (`_get_routes_version`), but without walking every route of a
    router that includes none: adding a route or including a router counts as a change of
    the router's own, so its own count alone says whether it includes any."""
    own: int = router._routes_version
    known = _nested.get(id(router))
    if known is None or known[0] is not router or known[1] != own:
        inner = [r.original_router for r in router.routes if isinstance(r, _IncludedRouter)]
        known = _nested[id(router)] = (router, own, inner)
    return own + sum(_version(nested) for nested in known[2])


# Each router's own count and the routers it includes, by identity (routers do not hash):
# the routers of an app are made once per process, at import, so this stays small.
_nested: dict[int, tuple[APIRouter, int, list[APIRouter]]] = {}


def _guarded(included: _IncludedRouter) -> Matches:
    ask: Matches = included.matches
    router = included.original_router
    known: dict[str, Any] = {"version": None, "paths": None}

    def matches(scope: Scope) -> tuple[Match, Scope]:
        version = _version(router)
        if version != known["version"]:
            known["paths"], known["version"] = _paths(included), version
        paths: _Paths | None = known["paths"]
        if paths is not None and scope["type"] == "http":
            path = get_route_path(scope)
            if path not in paths.exact and not path.startswith(paths.heads):
                return Match.NONE, {}
        return ask(scope)

    return matches


def install(router: APIRouter) -> None:
    """Guard each router included in `router` (once: installing again changes nothing)."""
    for route in router.routes:
        if isinstance(route, _IncludedRouter) and "matches" not in vars(route):
            route.matches = _guarded(route)  # type: ignore[method-assign,assignment]
