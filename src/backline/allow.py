"""The `Allow` header of a 405: every method the requested path answers, across all its routes.

Starlette answers 405 from the first route whose path matched, so `Allow` named only that
route's methods (`GET` for `/api/me`, which also has PATCH and DELETE). HEAD is listed with
GET, which `HeadAsGet` answers for every GET route.
"""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

# Starlette's and HTTP's order, so the header reads the same whichever route matched.
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(scope: Scope) -> str:
    app = scope.get("app")
    methods: set[str] = set()
    # FastAPI keeps included routers whole; each route context has the path as served.
    for route in iter_route_contexts(getattr(getattr(app, "router", None), "routes", [])):
        route_methods = route.methods
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route_methods
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods, key=lambda m: (_ORDER.index(m) if m in _ORDER else 99, m)))
