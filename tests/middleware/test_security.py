"""Security headers on every response, and CORS limited to the allowed origins."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from backline.config import Settings
from backline.middleware.security import SecurityHeaders

ORIGIN = "https://app.example.com"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, allowed_origins=ORIGIN)


@pytest.mark.parametrize("path", ["/healthz", "/nowhere", "/test/boom"])
async def test_baseline_headers_on_every_response(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "strict-transport-security" not in headers  # not in production


async def test_api_docs_are_html_with_a_csp_that_allows_only_their_assets(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in csp
    assert "frame-ancestors 'none'" in csp
    spec = await client.get("/openapi.json")
    assert spec.json()["info"]["title"] == "Backline"


async def test_html_gets_a_page_policy_and_hsts_in_production() -> None:
    async def page(request: object) -> HTMLResponse:
        return HTMLResponse("<p>hi</p>")

    inner = Starlette(routes=[Route("/page", page)])
    app = SecurityHeaders(inner, hsts=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/page")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")


async def test_cors_allows_listed_origins_only(client: httpx.AsyncClient) -> None:
    allowed = await client.get("/healthz", headers={"Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()

    other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_cors_preflight_refusal_is_a_problem(client: httpx.AsyncClient) -> None:
    ok = await client.options(
        "/healthz",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ORIGIN

    refused = await client.options(
        "/healthz",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "bad_request"
    assert "access-control-allow-origin" not in refused.headers
