"""Login: tokens, no enumeration, pinned algorithms and token types, lockout, rehash."""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid
import warnings
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import time_machine
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import User
from backline.accounts.tokens import AUDIENCE, ISSUER
from backline.config import Settings
from backline.db import create_sessionmaker, utcnow
from tests.accounts.conftest import PASSWORD, bearer, login, outbox, token_in


@pytest.fixture
def database_url(any_database_url: str) -> str:
    return any_database_url


async def test_login_returns_a_token_pair_that_opens_the_account(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("ann@example.com")
    tokens = await login(client, "ANN@example.com ")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    assert len(tokens["refresh_token"]) >= 43  # 32 bytes, base64url
    me = await client.get("/api/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert {"sub", "sid", "iat", "exp", "jti", "iss", "aud"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "HS256"


async def test_unknown_email_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("ann@example.com")
    unknown = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    wrong = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": "wrong " + PASSWORD}
    )
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(unknown) == strip(wrong)
    assert unknown.json()["code"] == "invalid_credentials"


@pytest.mark.slow
async def test_unknown_email_and_wrong_password_take_the_same_time(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    # Four wrong passwords per account stay under the lockout threshold.
    accounts = [f"ann{i}@example.com" for i in range(5)]
    for email in accounts:
        await make_user(email)

    async def timed(email: str) -> float:
        began = time.perf_counter()
        response = await client.post(
            "/api/auth/login", json={"email": email, "password": "wrong password here"}
        )
        assert response.status_code == 401
        return time.perf_counter() - began

    unknown: list[float] = []
    wrong: list[float] = []
    for i in range(20):  # interleaved, so drift hits both alike
        unknown.append(await timed(f"nobody{i}@example.com"))
        wrong.append(await timed(accounts[i % 5]))

    def p80(samples: list[float]) -> float:
        return statistics.quantiles(samples, n=5)[-1]

    # A difference in the work done shows in the middle and the upper part of both; a single
    # pause of the machine (a collection, a stolen CPU) is one sample, which p80 sets aside.
    assert abs(statistics.median(unknown) - statistics.median(wrong)) < 0.02
    assert abs(p80(unknown) - p80(wrong)) < 0.03


def _forge(
    claims: dict[str, Any], key: bytes | str, alg: str = "HS256", typ: str = "at+jwt"
) -> str:
    with warnings.catch_warnings():  # an attacker's HS512 with a 32-byte key: PyJWT objects
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=alg, headers={"typ": typ})


def _claims(user: User, **overrides: Any) -> dict[str, Any]:
    issued = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user.id),
        "sid": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + 600,
        "jti": "j",
        "token_use": "access",
    }
    base.update(overrides)
    return base


def _unsigned(claims: dict[str, Any]) -> str:
    segment = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{segment({'alg': 'none', 'typ': 'at+jwt'})}.{segment(claims)}."


async def test_forged_and_foreign_tokens_are_refused(
    client: httpx.AsyncClient, make_user: Any, settings: Settings
) -> None:
    account = await make_user("ann@example.com")
    tokens = await login(client, "ann@example.com")
    good = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    key = settings.signing_key
    # Verified once, the token is remembered: its altered copies must still be checked anew.
    assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200
    forged = {
        "alg none": _unsigned(good),
        "other key": _forge(good, b"x" * 48),
        "HS512 with our key": _forge(good, key, alg="HS512"),
        "wrong audience": _forge({**good, "aud": "someone-else"}, key),
        "wrong issuer": _forge({**good, "iss": "evil"}, key),
        "wrong typ": _forge(good, key, typ="JWT"),
        "not an access token": _forge({**good, "token_use": "refresh"}, key),
        "no sid": _forge({k: v for k, v in good.items() if k != "sid"}, key),
        "expired": _forge({**good, "exp": int(time.time()) - 60}, key),
        "garbled": tokens["access_token"][:-4] + "abcd",
        "refresh token as access": tokens["refresh_token"],
        "random session": _forge(_claims(account.user), key),
    }
    for name, token in forged.items():
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name
        assert response.json()["code"] in ("invalid_token", "session_revoked"), name
    assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200


async def test_reset_token_is_not_an_access_token(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user("ann@example.com")
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    reset = token_in((await outbox(engine, "password_reset"))[0])
    response = await client.get("/api/me", headers={"Authorization": f"Bearer {reset}"})
    assert response.status_code == 401


async def test_access_tokens_expire_after_fifteen_minutes(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("ann@example.com")
    tokens = await login(client, "ann@example.com")
    assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200
    with time_machine.travel(utcnow() + timedelta(minutes=14, seconds=50), tick=False):
        assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200
    with time_machine.travel(utcnow() + timedelta(minutes=15, seconds=10), tick=False):
        response = await client.get("/api/me", headers=bearer(tokens))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


async def test_a_token_is_not_valid_before_it_was_issued(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("ann@example.com")
    tokens = await login(client, "ann@example.com")
    assert (await client.get("/api/me", headers=bearer(tokens))).status_code == 200
    with time_machine.travel(utcnow() - timedelta(minutes=1), tick=False):
        response = await client.get("/api/me", headers=bearer(tokens))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer  "},
        {},
    ],
)
async def test_missing_or_malformed_credentials_are_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_five_wrong_passwords_lock_the_account_for_a_while(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user("ann@example.com")
    for _ in range(5):
        wrong = await client.post(
            "/api/auth/login", json={"email": "ann@example.com", "password": "wrong password!"}
        )
        assert wrong.status_code == 401
    for password in (PASSWORD, "wrong password!"):  # right or wrong: the same answer
        locked = await client.post(
            "/api/auth/login", json={"email": "ann@example.com", "password": password}
        )
        assert locked.status_code == 429
        assert locked.json()["code"] == "account_locked"
        assert 1 <= int(locked.headers["retry-after"]) <= 61
    [notice] = await outbox(engine, "account_locked")
    assert notice.to_address == "ann@example.com"

    with time_machine.travel(utcnow() + timedelta(minutes=1, seconds=5), tick=False):
        assert (await login(client, "ann@example.com"))["access_token"]


async def test_a_right_password_starts_the_count_afresh(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("ben@example.com")

    async def wrong_times(count: int) -> list[int]:
        answers = []
        for _ in range(count):
            answer = await client.post(
                "/api/auth/login", json={"email": "ben@example.com", "password": "wrong password!"}
            )
            answers.append(answer.status_code)
        return answers

    assert await wrong_times(4) == [401] * 4
    assert (await login(client, "ben@example.com"))["access_token"]
    assert await wrong_times(4) == [401] * 4  # four, not eight: no pause yet
    assert await wrong_times(1) == [401]  # the fifth since the right one pauses sign-in
    assert await wrong_times(1) == [429]


async def test_each_new_lock_lasts_longer_but_never_forever(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user("ann@example.com")
    moment = utcnow()
    durations = []
    with time_machine.travel(moment, tick=False) as clock:
        for _ in range(8):
            for _ in range(5):
                await client.post(
                    "/api/auth/login", json={"email": "ann@example.com", "password": "wrong pw!!"}
                )
            locked = await client.post(
                "/api/auth/login", json={"email": "ann@example.com", "password": PASSWORD}
            )
            seconds = int(locked.headers["retry-after"])
            durations.append(seconds)
            clock.shift(timedelta(seconds=seconds + 1))
    assert durations[1] > durations[0]
    assert durations[2] > durations[1]
    assert max(durations) <= 3601


async def test_a_reset_unlocks_the_account(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    await make_user("ann@example.com")
    for _ in range(5):
        await client.post(
            "/api/auth/login", json={"email": "ann@example.com", "password": "nope nope"}
        )
    await client.post("/api/auth/forgot-password", json={"email": "ann@example.com"})
    token = token_in((await outbox(engine, "password_reset"))[0])
    new_password = "a brand new passphrase 42"
    reset = await client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 204
    assert (await login(client, "ann@example.com", new_password))["access_token"]


async def test_an_outdated_hash_is_upgraded_at_login(
    client: httpx.AsyncClient, engine: AsyncEngine, make_user: Any
) -> None:
    account = await make_user("ann@example.com")
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await session.get(User, account.user.id)
        assert user is not None
        user.password_hash = weak
    await login(client, "ann@example.com")
    async with create_sessionmaker(engine)() as session:
        user = await session.get(User, account.user.id)
        assert user is not None
        params = extract_parameters(user.password_hash)
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
