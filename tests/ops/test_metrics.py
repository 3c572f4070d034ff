"""Who may read `/metrics`, and that nothing in it tells whether an address has an account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from backline.app import Backline
from backline.config import Settings
from tests.accounts.conftest import GENEROUS_LIMITS

TOKEN = "scraper-token-0123456789-abcdef"


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(
        database_url=database_url, rate_limits=GENEROUS_LIMITS, metrics_token=TOKEN
    )


async def serve(app: Backline) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


async def test_metrics_need_the_token_outside_development(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN[:-1]}x"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in wrong.text
    basic = await client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    ok = await client.get("/metrics", headers=SCRAPER)
    assert ok.status_code == 200
    assert "backline_http_requests_total" in ok.text


PRODUCTION: dict[str, Any] = {
    "env": "production",
    "secret_key": "p" * 40,
    "database_url": "postgresql://u:p@127.0.0.1:1/none",  # never reached by these requests
    "allowed_origins": "https://app.example.com",
    "public_url": "https://app.example.com",
    "email_backend": "resend",
    "resend_api_key": "re_x",
    "storage_backend": "s3",
    "s3_bucket": "b",
    "encryption_keys": "k1:" + "A" * 43,
}


async def test_production_without_a_token_serves_no_metrics(
    app_factory: Callable[[Settings], Backline], make_settings: Callable[..., Settings]
) -> None:
    async for client in serve(app_factory(make_settings(**PRODUCTION))):
        hidden = await client.get("/metrics")
        guessed = await client.get("/metrics", headers={"Authorization": "Bearer anything"})
        unknown = await client.get("/no-such-page")
    assert hidden.status_code == guessed.status_code == unknown.status_code == 404
    assert hidden.json()["code"] == unknown.json()["code"] == "not_found"
    assert "backline_" not in hidden.text + guessed.text


async def test_production_serves_metrics_to_the_scraper_only(
    app_factory: Callable[[Settings], Backline], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(**PRODUCTION, metrics_token=TOKEN)
    async for client in serve(app_factory(settings)):
        public = await client.get("/metrics")
        scraper = await client.get("/metrics", headers=SCRAPER)
    assert public.status_code == 401
    assert "backline_" not in public.text
    assert scraper.status_code == 200
    assert "backline_http_requests_total" in scraper.text


def test_a_short_metrics_token_is_a_configuration_problem(
    make_settings: Callable[..., Settings],
) -> None:
    problems = make_settings(metrics_token="short-token").problems()
    assert any(line.startswith("BACKLINE_METRICS_TOKEN is too short") for line in problems)
    assert not any("METRICS" in line for line in make_settings(metrics_token=TOKEN).problems())


async def test_development_serves_metrics_without_a_token(
    app_factory: Callable[[Settings], Backline],
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    settings = make_settings(database_url=database_url, env="development", outbox_worker="external")
    async for client in serve(app_factory(settings)):
        response = await client.get("/metrics")
    assert response.status_code == 200


# ----------------------------------------------------------------------------- enumeration

PASSWORD = "a perfectly fine passphrase 9"


# The outbox's backlog counts the emails waiting, as `backline_emails_total` counts them sent:
# both see the message a route sends to an address that has an account, later and in bulk.
# What is compared here is what the requests themselves move.
NOT_COMPARED = (
    "backline_http_request_duration",
    "backline_http_requests",
    "backline_outbox_",
)


def _counters(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Backline's own samples, but request counts and durations (alike for one route) and the
    outbox's backlog."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if not name.startswith("backline_") or name.endswith("_created"):
                continue
            if name.startswith(NOT_COMPARED):
                continue
            found[name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def _movement(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> tuple[int, dict[Any, float]]:
    before = _counters((await client.get("/metrics", headers=SCRAPER)).text)
    response = await client.post(path, json=body)
    after = _counters((await client.get("/metrics", headers=SCRAPER)).text)
    moved = {key: value - before.get(key, 0.0) for key, value in after.items()}
    return response.status_code, {key: delta for key, delta in moved.items() if delta}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/register", {"password": PASSWORD, "display_name": "Someone"}),
        ("/api/auth/resend-verification", {}),
        ("/api/auth/forgot-password", {}),
        ("/api/auth/login", {"password": "not the password at all"}),
    ],
)
async def test_public_paths_move_the_metrics_alike_for_known_and_unknown_addresses(
    client: httpx.AsyncClient, make_user: Any, path: str, body: dict[str, Any]
) -> None:
    await make_user("known@example.com", verified=path != "/api/auth/resend-verification")
    known = await _movement(client, path, {**body, "email": "known@example.com"})
    unknown = await _movement(client, path, {**body, "email": "stranger@example.com"})
    assert known == unknown
    assert known[1]  # the comparison saw the route's own rate-limit decisions at least
