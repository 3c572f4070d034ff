"""Managing one's factors over the API: enrolment (never half-done, a wrong code audited and
rate-limited), removal, new recovery codes, roles that must use a factor, export and deletion,
key rotation (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backline import encrypted
from backline.accounts.models import Role
from backline.config import Settings
from backline.crypto import KeyRing, generate_entry, key_id_of
from backline.db import create_sessionmaker
from backline.factors.models import MfaChallenge, RecoveryCode, TotpFactor
from tests.accounts.conftest import PASSWORD, bearer, login
from tests.factors.conftest import (
    LIMITS,
    budget,
    code_now,
    enrol,
    events,
    failures,
    password_step,
    second_step,
)

pytestmark = pytest.mark.usefixtures("clock")


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def count(engine: AsyncEngine, model: Any) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_enrolment_is_nothing_until_confirmed_and_the_secret_is_sealed(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine, settings: Settings
) -> None:
    await make_user()
    auth = bearer(await login(client, "ann@example.com"))
    wrong = await client.post("/api/me/factors/totp", json={"password": "nope"}, headers=auth)
    problem(wrong, 403, "invalid_credentials")
    started = await client.post("/api/me/factors/totp", json={"password": PASSWORD}, headers=auth)
    assert started.status_code == 201
    body = started.json()
    secret = body["secret"]
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert body["qr_svg"].startswith("<svg")
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(select(TotpFactor))
        assert row is not None
        assert secret.encode() not in row.secret
        assert key_id_of(row.secret) == settings.key_ring.primary.id
    state = (await client.get("/api/me/factors", headers=auth)).json()
    assert state["totp"] == {
        "enabled": False, "pending": True, "created_at": None, "last_used_at": None,
    }  # fmt: skip
    # Pending: sign-in still takes the password alone.
    assert "access_token" in await login(client, "ann@example.com")
    bad = await client.post("/api/me/factors/totp/confirm", json={"code": "000000"}, headers=auth)
    problem(bad, 422, "invalid_mfa_code")
    assert await count(engine, RecoveryCode) == 0
    [failed] = await events(engine, "mfa_enrol_failed")
    assert failed.details == {"reason": "invalid_mfa_code"}
    assert await failures(engine) == 0  # a typo while setting up does not lock the account
    assert (await client.get("/api/me/factors", headers=auth)).json()["totp"]["pending"] is True
    confirmed = await client.post(
        "/api/me/factors/totp/confirm", json={"code": code_now(secret)}, headers=auth
    )
    codes = confirmed.json()["recovery_codes"]
    assert len(set(codes)) == 10
    async with create_sessionmaker(engine)() as session:
        stored = (await session.scalars(select(RecoveryCode.code_hash))).all()
    assert not {c.replace("-", "") for c in codes} & set(stored)  # hashes only
    state = (await client.get("/api/me/factors", headers=auth)).json()
    assert state["totp"]["enabled"] is True
    assert state["recovery_codes"].keys() == {"remaining", "created_at", "last_used_at"}
    assert state["recovery_codes"]["remaining"] == 10
    # Shown once: nothing the account can read afterwards holds a code, in either form.
    for path in ("/api/me/factors", "/api/me/export", "/api/me"):
        text = (await client.get(path, headers=auth)).text
        assert not any(c in text or c.replace("-", "") in text for c in codes), path
    twice = await client.post(
        "/api/me/factors/totp/confirm", json={"code": code_now(secret)}, headers=auth
    )
    assert twice.status_code >= 400
    assert not any(c in twice.text for c in codes)
    again = await client.post("/api/me/factors/totp", json={"password": PASSWORD}, headers=auth)
    problem(again, 409, "totp_already_enabled")


@pytest.mark.usefixtures("one_window")
async def test_wrong_confirming_codes_are_audited_and_limited_and_enrol_nothing(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    make_user: Any,
    engine: AsyncEngine,
) -> None:
    settings = make_settings(
        database_url=database_url, rate_limits={**LIMITS, "mfa_manage": "3/minute"},
        lockout_threshold=20,
    )  # fmt: skip
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ann = await make_user()
            auth = bearer(await login(client, "ann@example.com"))
            started = await client.post(
                "/api/me/factors/totp", json={"password": PASSWORD}, headers=auth
            )
            assert started.status_code == 201
            secret = started.json()["secret"]
            right = code_now(secret)
            wrong = f"{(int(right) + 1) % 1_000_000:06d}"
            for _ in range(2):
                answer = await client.post(
                    "/api/me/factors/totp/confirm", json={"code": wrong}, headers=auth
                )
                problem(answer, 422, "invalid_mfa_code")
            assert budget(answer, "mfa_manage") == 0  # the start and the two wrong codes
            spent = await client.post(
                "/api/me/factors/totp/confirm", json={"code": right}, headers=auth
            )
            problem(spent, 429, "rate_limited")
            assert spent.headers["content-type"].startswith("application/problem+json")
            assert int(spent.headers["Retry-After"]) > 0
            failed = await events(engine, "mfa_enrol_failed")
            assert [(e.user_id, e.details) for e in failed] == [
                (ann.user.id, {"reason": "invalid_mfa_code"})
            ] * 2
            # Nothing half-enrolled: still pending, no recovery codes, sign-in in one step.
            assert not await events(engine, "totp_enabled")
            async with create_sessionmaker(engine)() as session:
                row = (await session.scalars(select(TotpFactor))).one()
                assert row.confirmed_at is None
            assert await count(engine, RecoveryCode) == 0
            state = (await client.get("/api/me/factors", headers=auth)).json()
            assert state["totp"]["enabled"] is False
            assert state["totp"]["pending"] is True
            assert "access_token" in await login(client, "ann@example.com")


async def test_removal_needs_the_password_and_a_code(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    secret, codes = await enrol(client, tokens)
    auth = bearer(tokens)

    async def remove(**body: str) -> httpx.Response:
        return await client.request("DELETE", "/api/me/factors/totp", json=body, headers=auth)

    problem(await remove(password="nope", code=code_now(secret)), 403, "invalid_credentials")
    problem(await remove(password=PASSWORD, code="000000"), 403, "invalid_mfa_code")
    problem(await remove(password=PASSWORD), 422, "validation_failed")
    assert await count(engine, TotpFactor) == 1
    assert (await remove(password=PASSWORD, code=codes[0])).status_code == 204
    assert await count(engine, TotpFactor) == 0
    assert await count(engine, RecoveryCode) == 0
    assert "access_token" in await login(client, "ann@example.com")
    problem(await remove(password=PASSWORD, code=code_now(secret)), 409, "no_factor")


async def test_new_recovery_codes_replace_the_old(
    client: httpx.AsyncClient, make_user: Any
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    _, old = await enrol(client, tokens)
    auth = bearer(tokens)
    refused = await client.post("/api/me/factors/recovery-codes", json={}, headers=auth)
    problem(refused, 422, "validation_failed")
    wrong = await client.post(
        "/api/me/factors/recovery-codes", json={"password": "nope"}, headers=auth
    )
    problem(wrong, 403, "invalid_credentials")
    made = await client.post(
        "/api/me/factors/recovery-codes", json={"password": PASSWORD}, headers=auth
    )
    new = made.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    first = await password_step(client)
    problem(
        await second_step(client, first["challenge_token"], recovery_code=old[0]),
        401,
        "invalid_recovery_code",
    )
    done = await second_step(client, first["challenge_token"], recovery_code=new[0])
    assert done.status_code == 200


async def test_a_role_that_needs_a_factor_must_enrol_before_any_session(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    database_url: str,
    make_user: Any,
    engine: AsyncEngine,
) -> None:
    settings = make_settings(
        database_url=database_url, rate_limits=LIMITS, lockout_threshold=20,
        mfa_required_roles="staff,admin",
    )  # fmt: skip
    assert settings.mfa_required_roles == ["staff", "admin"]
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await make_user("boss@example.com", role=Role.STAFF, display_name="Boss")
            await make_user()  # a plain user is not asked
            assert "access_token" in await login(client, "ann@example.com")
            first = await password_step(client, "boss@example.com")
            assert first["enrolment_required"] is True
            assert first["methods"] == ["totp"]
            token = first["challenge_token"]
            # Not a sign-in challenge, nor an access token.
            problem(await second_step(client, token, code="123456"), 401, "invalid_challenge")
            me = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            problem(me, 401, "invalid_token")
            started = await client.post("/api/auth/mfa/enrol/totp", json={"challenge_token": token})
            assert started.status_code == 200, started.text
            secret = started.json()["secret"]
            wrong = await client.post(
                "/api/auth/mfa/enrol/totp/confirm",
                json={"challenge_token": token, "code": "000000"},
            )
            problem(wrong, 401, "invalid_mfa_code")
            # A wrong step of sign-in (counted toward the lockout), and a failed enrolment.
            assert [e.details["reason"] for e in await events(engine, "mfa_failed")] == [
                "invalid_mfa_code"
            ]
            assert len(await events(engine, "mfa_enrol_failed")) == 1
            assert await failures(engine, "boss@example.com") == 1
            done = await client.post(
                "/api/auth/mfa/enrol/totp/confirm",
                json={"challenge_token": token, "code": code_now(secret, steps=-1)},
            )
            assert done.status_code == 200, done.text
            assert len(done.json()["recovery_codes"]) == 10
            auth = bearer(done.json())
            assert (await client.get("/api/me", headers=auth)).status_code == 200
            reused = await client.post("/api/auth/mfa/enrol/totp", json={"challenge_token": token})
            problem(reused, 401, "challenge_used")
            # From now on, the usual second step; and the factor cannot be removed.
            second = await password_step(client, "boss@example.com")
            assert second["enrolment_required"] is False
            verified = await second_step(client, second["challenge_token"], code=code_now(secret))
            assert verified.status_code == 200
            removal = await client.request(
                "DELETE", "/api/me/factors/totp",
                json={"password": PASSWORD, "code": done.json()["recovery_codes"][0]},
                headers=auth,
            )  # fmt: skip
            problem(removal, 409, "factor_required")
            state = (await client.get("/api/me/factors", headers=auth)).json()
            assert state["required"] is True
            assert state["recovery_codes"]["remaining"] == 10  # nothing was used up


async def test_export_lists_factors_without_secrets_and_deletion_removes_them(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine
) -> None:
    await make_user()
    tokens = await login(client, "ann@example.com")
    secret, codes = await enrol(client, tokens)
    await password_step(client)  # an open challenge
    exported = await client.get("/api/me/export", headers=bearer(tokens))
    factors = exported.json()["second_factors"]
    assert [f["kind"] for f in factors] == ["totp", "recovery_codes"]
    assert factors[0]["created_at"]
    assert factors[1]["remaining"] == 10
    text = exported.text
    assert secret not in text
    assert not any(code in text for code in codes)
    gone = await client.request(
        "DELETE", "/api/me", json={"password": PASSWORD}, headers=bearer(tokens)
    )
    assert gone.status_code == 204
    for model in (TotpFactor, RecoveryCode, MfaChallenge):
        assert await count(engine, model) == 0


async def test_key_rotation_re_encrypts_the_secrets(
    client: httpx.AsyncClient, make_user: Any, engine: AsyncEngine, settings: Settings
) -> None:
    await make_user()
    secret, _ = await enrol(client, await login(client, "ann@example.com"))
    assert "totp_factors" in {entry.name for entry in encrypted.registered()}
    assert settings.encryption_keys is not None
    old = settings.encryption_keys.get_secret_value()
    ring = KeyRing.parse(f"{generate_entry()},{old}")
    result = await encrypted.rotate(create_sessionmaker(engine), ring)
    assert result.rotated >= 1
    assert not result.failed
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(select(TotpFactor))
        assert row is not None
        assert key_id_of(row.secret) == ring.primary.id
        opened = ring.open(row.secret, table="totp_factors", column="secret", row_id=row.id)
    assert opened == secret
