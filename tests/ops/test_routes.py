"""Health, readiness and metrics endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from backline.app import Backline
from backline.config import Settings
from tests.conftest import LogCapture, free_port
from tests.s3servers import S3Server


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def serve(app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database_and_storage(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}


@pytest.mark.redis
async def test_readyz_checks_redis_when_configured(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
) -> None:
    settings = make_settings(database_url=database_url, redis_url=redis_url)
    async for client in serve(app_factory(settings)):
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "ok"


async def test_readyz_names_a_dead_redis(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    dead = f"redis://:never-shown-pw@127.0.0.1:{free_port()}/0"
    settings = make_settings(database_url=database_url, redis_url=dead)
    async for client in serve(app_factory(settings)):
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["redis"].startswith("error")
    assert body["checks"]["database"] == "ok"
    assert "redis" in body["detail"]
    assert "never-shown-pw" not in response.text


async def test_readyz_names_a_dead_database(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = make_settings(
        database_url=f"postgresql://backline:db-secret@127.0.0.1:{port}/none",
        db_statement_timeout=1,
    )
    async for client in serve(app_factory(settings)):
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] != "ok"
    assert "database" in body["detail"]
    assert "db-secret" not in response.text


async def test_readyz_names_missing_storage(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=database_url, storage_dir=tmp_path / "store")
    app = app_factory(settings)
    async for client in serve(app):
        (tmp_path / "store").rmdir()
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("error")


async def test_metrics_count_requests_by_route_template(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    token = "scraper-token-0123456789-abcdef"
    settings = make_settings(database_url=database_url, metrics_token=token)
    async for client in serve(app_factory(settings)):
        await client.get("/test/slow?seconds=0")
        await client.get("/no/such/path/123")
        text = (await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})).text
    assert 'backline_http_requests_total{method="GET",route="/test/slow",status="200"}' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "/no/such/path/123" not in text


async def test_load_balancers_may_probe_with_head(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.head(path)
        assert response.status_code == 200
        assert response.content == b""
        assert int(response.headers["content-length"]) > 0
    line = logs.named("request")[-1]
    assert (line["method"], line["route"]) == ("HEAD", "/readyz")


async def test_framework_routes_are_logged_by_path(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    await client.get("/openapi.json")
    assert logs.named("request")[-1]["route"] == "/openapi.json"


async def test_readyz_checks_the_s3_bucket(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
    s3_server: S3Server,
) -> None:
    settings = make_settings(
        database_url=database_url,
        storage_backend="s3",
        s3_bucket=s3_server.bucket,
        s3_endpoint_url=s3_server.endpoint,
        s3_region="us-east-1",
    )
    async for client in serve(app_factory(settings)):
        ok = await client.get("/readyz")
    assert ok.json()["checks"]["storage"] == "ok"
    missing = make_settings(
        database_url=database_url,
        storage_backend="s3",
        s3_bucket="no-such-bucket",
        s3_endpoint_url=s3_server.endpoint,
        s3_region="us-east-1",
    )
    async for client in serve(app_factory(missing)):
        down = await client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["storage"].startswith("error")
