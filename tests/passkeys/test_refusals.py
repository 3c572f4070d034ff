"""Every refusal of a passkey ceremony: a 4xx problem with its code, audited, the challenge
spent, and nothing else written (no session, no passkey, the counter unmoved)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.accounts.models import AuthSession, User
from backline.accounts.tokens import now
from backline.audit.models import AuditEvent
from backline.config import Settings
from backline.db import create_sessionmaker
from backline.passkeys.models import Passkey, PasskeyChallenge
from tests.passkeys.authenticator import Authenticator, b64url
from tests.passkeys.conftest import LIMITS, ORIGIN, add_passkey, sign_in_options, signed_in


async def count(engine: AsyncEngine, model: Any) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def failures(engine: AsyncEngine, event: str) -> list[AuditEvent]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.event == event))
        return list(rows.all())


async def verify(client: httpx.AsyncClient, credential: Any) -> httpx.Response:
    return await client.post("/api/auth/passkeys/verify", json={"credential": credential})


def problem(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code


@pytest.fixture
async def ann(
    client: httpx.AsyncClient, make_user: Callable[..., Any], authenticator: Authenticator
) -> Any:
    account = await make_user("ann@example.com")
    await add_passkey(client, await signed_in(client, account.email), authenticator)
    return account


def tampered_challenge(options: dict[str, Any]) -> dict[str, Any]:
    return {**options, "challenge": b64url(b"\x00" * 32)}


ASSERTION_CASES: dict[str, tuple[Callable[[Authenticator, dict[str, Any]], Any], int, str]] = {
    "wrong origin": (
        lambda a, o: a.get(o, origin="https://evil.example"),
        400,
        "wrong_origin",
    ),
    "wrong rp id": (lambda a, o: a.get(o, rp_id="evil.example"), 400, "wrong_rp_id"),
    "replayed counter": (lambda a, o: a.get(o, counter=0), 401, "sign_count_replayed"),
    "challenge never issued": (
        lambda a, o: a.get(tampered_challenge(o)),
        400,
        "challenge_unknown",
    ),
    "bad signature": (
        lambda a, o: {
            **a.get(o),
            "response": {**a.get(o)["response"], "signature": b64url(b"\x30\x06" + b"\x00" * 6)},
        },
        401,
        "invalid_assertion",
    ),
    "user not verified": (lambda a, o: a.get(o, flags=0x01), 401, "invalid_assertion"),
    "unknown credential": (
        lambda a, o: {**a.get(o), "id": b64url(b"nope"), "rawId": b64url(b"nope")},
        401,
        "unknown_credential",
    ),
    "malformed: not an object": (lambda a, o: {"id": 1}, 400, "malformed_credential"),
    "malformed: client data": (
        lambda a, o: {**a.get(o), "response": {**a.get(o)["response"], "clientDataJSON": "!!"}},
        400,
        "malformed_credential",
    ),
    "malformed: authenticator data": (
        lambda a, o: {
            **a.get(o),
            "response": {**a.get(o)["response"], "authenticatorData": b64url(b"short")},
        },
        400,
        "malformed_credential",
    ),
}


@pytest.mark.parametrize("case", list(ASSERTION_CASES))
async def test_a_refused_assertion_writes_nothing_but_its_record(
    case: str,
    client: httpx.AsyncClient,
    ann: Any,
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    make, status, code = ASSERTION_CASES[case]
    if code == "sign_count_replayed":  # one good use first, so the counter stands at 1
        assert (await verify(client, authenticator.get(await sign_in_options(client)))).is_success
    sessions_before = await count(engine, AuthSession)
    options = await sign_in_options(client)
    answer = await verify(client, make(authenticator, options))
    problem(answer, status, code)
    assert await count(engine, AuthSession) == sessions_before
    async with create_sessionmaker(engine)() as session:
        stored = await session.scalar(select(Passkey.sign_count))
    assert stored == (1 if code == "sign_count_replayed" else 0)
    [event] = await failures(engine, "passkey_login_failed")
    assert event.details["reason"] == code
    if code in ("sign_count_replayed", "invalid_assertion"):
        assert event.user_id == ann.user.id


async def test_a_challenge_is_good_once(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator
) -> None:
    options = await sign_in_options(client)
    assert (await verify(client, authenticator.get(options))).status_code == 200
    problem(await verify(client, authenticator.get(options)), 400, "challenge_used")
    # A refused answer spends it too: no second try with the same challenge.
    options = await sign_in_options(client)
    problem(
        await verify(client, authenticator.get(options, origin="https://evil.example")),
        400,
        "wrong_origin",
    )
    problem(await verify(client, authenticator.get(options)), 400, "challenge_used")


async def test_an_expired_challenge_is_refused(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator, engine: AsyncEngine
) -> None:
    options = await sign_in_options(client)
    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(
            update(PasskeyChallenge).values(expires_at=now() - timedelta(seconds=1))
        )
    problem(await verify(client, authenticator.get(options)), 400, "challenge_expired")
    assert await count(engine, AuthSession) == 1  # Ann's password sign-in only


async def test_another_account_s_passkey_is_refused_when_an_address_is_named(
    client: httpx.AsyncClient,
    ann: Any,
    authenticator: Authenticator,
    make_user: Callable[..., Any],
) -> None:
    bob = await make_user("bob@example.com")
    bobs = Authenticator(origin=ORIGIN)
    await add_passkey(client, await signed_in(client, bob.email), bobs)
    options = await sign_in_options(client, "ann@example.com")
    problem(await verify(client, bobs.get(options)), 401, "credential_mismatch")
    # An address with no account accepts no passkey at all, and looks the same.
    options = await sign_in_options(client, "nobody@example.com")
    assert options["allowCredentials"] == []
    problem(await verify(client, authenticator.get(options)), 401, "credential_mismatch")
    # A user handle naming another account than the credential's owner.
    options = await sign_in_options(client)
    lying = authenticator.get(options)
    lying["response"]["userHandle"] = b64url(bob.user.id.bytes)
    problem(await verify(client, lying), 401, "credential_mismatch")


@pytest.mark.usefixtures("one_window")
async def test_locked_and_unverified_accounts_are_refused_as_login_refuses_them(
    client: httpx.AsyncClient, ann: Any, authenticator: Authenticator, engine: AsyncEngine
) -> None:
    for _ in range(5):  # the lockout threshold
        wrong = await client.post(
            "/api/auth/login", json={"email": ann.email, "password": "not the password"}
        )
    assert wrong.status_code in (401, 429)
    answer = await verify(client, authenticator.get(await sign_in_options(client)))
    problem(answer, 429, "account_locked")
    assert int(answer.headers["Retry-After"]) > 0

    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(update(User).values(email_verified_at=None))
        await session.execute(
            AuditEvent.__table__.delete()  # type: ignore[attr-defined]
        )
    from backline.accounts.throttle import LoginThrottle

    async with create_sessionmaker(engine)() as session, session.begin():
        await session.execute(LoginThrottle.__table__.delete())  # type: ignore[attr-defined]
    answer = await verify(client, authenticator.get(await sign_in_options(client)))
    problem(answer, 403, "email_not_verified")
    [event] = await failures(engine, "passkey_login_failed")
    assert event.details["reason"] == "email_not_verified"


REGISTRATION_CASES: dict[str, tuple[dict[str, Any], int, str]] = {
    "wrong origin": ({"origin": "https://evil.example"}, 400, "wrong_origin"),
    "wrong rp id": ({"rp_id": "evil.example"}, 400, "wrong_rp_id"),
    "user not verified": ({"flags": 0x41}, 400, "invalid_attestation"),
}


@pytest.mark.parametrize("case", list(REGISTRATION_CASES))
async def test_a_refused_registration_stores_no_passkey(
    case: str,
    client: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    lie, status, code = REGISTRATION_CASES[case]
    ann = await make_user("ann@example.com")
    headers = await signed_in(client, ann.email)
    options = (await client.post("/api/me/passkeys/options", headers=headers)).json()
    _, created = authenticator.create(options, **lie)
    answer = await client.post(
        "/api/me/passkeys", headers=headers, json={"name": "Laptop", "credential": created}
    )
    problem(answer, status, code)
    assert await count(engine, Passkey) == 0
    [event] = await failures(engine, "passkey_add_failed")
    assert event.details["reason"] == code
    assert event.user_id == ann.user.id


async def test_registration_challenges_are_the_account_s_own_and_good_once(
    client: httpx.AsyncClient,
    make_user: Callable[..., Any],
    authenticator: Authenticator,
    engine: AsyncEngine,
) -> None:
    ann = await make_user("ann@example.com")
    bob = await make_user("bob@example.com")
    ann_headers = await signed_in(client, ann.email)
    bob_headers = await signed_in(client, bob.email)
    options = (await client.post("/api/me/passkeys/options", headers=ann_headers)).json()
    _, created = authenticator.create(options)
    # Bob cannot spend Ann's challenge ...
    answer = await client.post(
        "/api/me/passkeys", headers=bob_headers, json={"name": "x", "credential": created}
    )
    problem(answer, 400, "challenge_unknown")
    # ... nor a sign-in challenge serve to register.
    sign_in = await sign_in_options(client)
    _, other = authenticator.create({**options, "challenge": sign_in["challenge"]})
    answer = await client.post(
        "/api/me/passkeys", headers=ann_headers, json={"name": "x", "credential": other}
    )
    problem(answer, 400, "challenge_unknown")
    body = {"name": "Laptop", "credential": created}
    assert (
        await client.post("/api/me/passkeys", headers=ann_headers, json=body)
    ).status_code == 201
    answer = await client.post("/api/me/passkeys", headers=ann_headers, json=body)
    problem(answer, 400, "challenge_used")
    for bad in ({"id": "x"}, "not an object", {"name": "x"}):
        answer = await client.post(
            "/api/me/passkeys", headers=ann_headers, json={"name": "x", "credential": bad}
        )
        assert answer.status_code in (400, 422), answer.text
        assert answer.json()["code"] in ("malformed_credential", "validation_failed")
    assert await count(engine, Passkey) == 1


async def test_malformed_json_is_a_problem(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/api/auth/passkeys/verify",
        content=b'{"credential": ',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "malformed_json"
    answer = await client.post(
        "/api/auth/passkeys/verify",
        content=json.dumps({"credential": []}).encode(),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422


@pytest.mark.usefixtures("one_window")
async def test_sign_in_attempts_are_rate_limited(
    make_settings: Callable[..., Settings],
    database_url: str,
    app_factory: Callable[[Settings], Any],
) -> None:
    from asgi_lifespan import LifespanManager

    settings = make_settings(
        database_url=database_url,
        public_url=ORIGIN,
        rate_limits={**LIMITS, "passkey_login": "3/minute"},
    )
    app = app_factory(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            options = await sign_in_options(c)
            bogus = {"id": b64url(b"x"), "rawId": b64url(b"x")}
            for _ in range(2):  # refused assertions count like any other
                problem(
                    await verify(c, {**bogus, "challenge": options["challenge"]}),
                    400,
                    "malformed_credential",
                )
            problem(await verify(c, bogus), 429, "rate_limited")
