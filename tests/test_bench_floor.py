"""`bench.floor`, the sign-in floor `bench.auth` compares logins with, signs a person in with
Backline's own statements: a change to them that the floor does not follow fails here, not in
the middle of a bench run."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from bench import auth
from bench.load import server_process
from bench.support import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _sign_in(redis_url: str) -> tuple[int, dict[str, object], int]:
    with postgres_database() as url:
        asyncio.run(auth._user(url))
        env = {
            "BACKLINE_ENV": "test",
            "BACKLINE_DATABASE_URL": url,
            "BACKLINE_REDIS_URL": redis_url,
            "BACKLINE_REDIS_PREFIX": f"backline-floor-{uuid.uuid4().hex[:8]}",
            "BACKLINE_RATE_LIMITS": json.dumps({"global": auth.HUGE, "login": auth.HUGE}),
            "BACKLINE_LOG_LEVEL": "WARNING",
        }
        with server_process(env, factory="bench.floor:create_app") as (port, _):
            login = f"http://127.0.0.1:{port}/api/auth/login"
            right = httpx.post(login, json={"email": auth.EMAIL, "password": auth.PASSWORD})
            wrong = httpx.post(login, json={"email": auth.EMAIL, "password": "not it at all"})
            return right.status_code, right.json(), wrong.status_code


async def test_the_floor_signs_in_with_backlines_statements(redis_url: str) -> None:
    status, body, refused = await asyncio.to_thread(_sign_in, redis_url)
    assert status == 200
    assert body["token_type"] == "bearer"
    assert str(body["access_token"]).count(".") == 2
    assert refused == 401
