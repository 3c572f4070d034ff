"""The TIN stays secret: not in the database, logs, responses or exports; a tampered or moved
ciphertext is refused with a problem and an alert, never read as garbage."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from backline.models import metadata
from backline.tax.models import TaxForm
from tests.conftest import LogCapture
from tests.tax.conftest import EIN, EIN_DIGITS, SSN, SSN_DIGITS, forms, w9

Person = tuple[str, dict[str, str]]
SECRETS = (SSN, SSN_DIGITS, EIN, EIN_DIGITS, "Harbor", "O'Neil")


async def raw_database_text(engine: AsyncEngine) -> str:
    """Every value of every table, bytes read as Latin-1 (so any ASCII digits would show)."""
    parts: list[str] = []
    async with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in (await connection.execute(select(table))).all():
                for value in row:
                    is_bytes = isinstance(value, bytes)
                    parts.append(value.decode("latin-1") if is_bytes else str(value))
    return "\n".join(parts)


async def test_no_trace_of_the_tin_in_tables_logs_responses_or_exports(
    client: httpx.AsyncClient,
    artist: Person,
    admin: Person,
    engine: AsyncEngine,
    logs: LogCapture,
) -> None:
    artist_id, headers = artist
    bad = await client.put("/api/me/tax-form", json=w9(certify="yes"), headers=headers)
    assert bad.status_code == 422
    wrong = await client.put("/api/me/tax-form", json=w9(signature_name="x"), headers=headers)
    assert wrong.status_code == 422
    responses = [
        await client.put("/api/me/tax-form", json=w9(), headers=headers),
        await client.put(
            "/api/me/tax-form",
            json=w9(federal_tax_classification="s_corporation", tin_type="ein", tin=EIN),
            headers=headers,
        ),
        await client.get("/api/me/tax-form", headers=headers),
        await client.get(f"/api/admin/users/{artist_id}/tax-form", headers=admin[1]),
        await client.get("/api/me/export", headers=headers),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        for secret in (SSN, SSN_DIGITS, EIN, EIN_DIGITS):
            assert secret not in response.text
    exported = responses[-1].json()["tax_form"]
    assert exported["tin"] == "**-***8465"
    assert exported["address_line1"] == "12 Harbor St"
    stored = await raw_database_text(engine)
    for secret in SECRETS:
        assert secret not in stored, secret
    assert "8465" in stored  # the last four digits are kept in the clear, as designed
    assert logs.named("tax_form_submitted")
    for secret in (SSN, SSN_DIGITS, EIN, EIN_DIGITS):
        assert secret not in logs.text


async def flip_last_byte(engine: AsyncEngine, form_id: object, column: str) -> None:
    async with engine.begin() as connection:
        sealed = await connection.scalar(
            select(TaxForm.__table__.c[column]).where(TaxForm.id == form_id)
        )
        await connection.execute(
            update(TaxForm)
            .where(TaxForm.id == form_id)
            .values({column: sealed[:-1] + bytes([sealed[-1] ^ 0x40])})
        )


async def test_a_tampered_value_is_a_problem_and_an_alert(
    client: httpx.AsyncClient,
    artist: Person,
    admin: Person,
    engine: AsyncEngine,
    logs: LogCapture,
) -> None:
    artist_id, headers = artist
    await client.put("/api/me/tax-form", json=w9(), headers=headers)
    [form] = await forms(engine)
    await flip_last_byte(engine, form.id, "details")
    response = await client.get("/api/me/tax-form", headers=headers)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "undecryptable"
    [alert] = logs.named("ciphertext_rejected")
    assert alert["level"] == "error"
    where = (alert["table"], alert["column"], alert["row_id"])
    assert where == ("tax_forms", "details", str(form.id))

    await flip_last_byte(engine, form.id, "tin")
    reveal = await client.post(f"/api/admin/users/{artist_id}/tax-form/reveal", headers=admin[1])
    assert reveal.status_code == 503
    assert reveal.json()["code"] == "undecryptable"
    assert logs.named("ciphertext_rejected")[-1]["column"] == "tin"
    assert not logs.named("unhandled_exception")


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    client: httpx.AsyncClient,
    artist: Person,
    admin: Person,
    make_user: Any,
    engine: AsyncEngine,
) -> None:
    from backline.accounts.models import Role
    from tests.tax.conftest import signed_in

    _, headers = artist
    other_id, other = await signed_in(client, make_user, "other@example.com", Role.ARTIST)
    await client.put("/api/me/tax-form", json=w9(), headers=headers)
    await client.put("/api/me/tax-form", json=w9(tin="523-84-9170"), headers=other)
    mine, theirs = await forms(engine)
    async with engine.begin() as connection:  # copy one person's sealed TIN into the other's row
        await connection.execute(
            update(TaxForm).where(TaxForm.id == theirs.id).values(tin=mine.tin)
        )
    reveal = await client.post(f"/api/admin/users/{other_id}/tax-form/reveal", headers=admin[1])
    assert reveal.status_code == 503
    assert SSN not in reveal.text
    async with engine.begin() as connection:  # and into another column of the same row
        await connection.execute(
            update(TaxForm).where(TaxForm.id == mine.id).values(details=mine.tin)
        )
    assert (await client.get("/api/me/tax-form", headers=headers)).status_code == 503
