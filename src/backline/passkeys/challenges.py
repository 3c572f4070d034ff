"""Challenges for passkey ceremonies: issued by the server, kept by it, good once for 5 minutes.

The browser echoes the challenge inside the signed clientDataJSON. It is looked up by its
SHA-256 digest among those issued, for the same purpose (and, when registering or completing
a sign-in's second step, the same account and the same MFA challenge), and spent by a
conditional UPDATE, so that of two concurrent answers only one counts.
The challenge is spent by the first answer whatever its outcome: a refused assertion cannot be
retried with the same challenge. Rows are pruned an hour after they expire.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts.tokens import now
from backline.passkeys.models import PasskeyChallenge
from backline.passkeys.refusals import Refused

LIFETIME = timedelta(minutes=5)
KEPT_AFTER_EXPIRY = timedelta(hours=1)


def _digest(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


async def issue(
    session: AsyncSession,
    *,
    purpose: str,
    user_id: uuid.UUID | None = None,
    bound: bool = False,
    mfa_challenge_id: uuid.UUID | None = None,
) -> bytes:
    """A new random challenge for `purpose`, stored (as a digest) and returned; with
    `mfa_challenge_id`, good only for completing that sign-in challenge."""
    moment = now()
    await session.execute(
        delete(PasskeyChallenge).where(PasskeyChallenge.expires_at < moment - KEPT_AFTER_EXPIRY)
    )
    challenge = secrets.token_bytes(32)
    session.add(
        PasskeyChallenge(
            challenge_hash=_digest(challenge),
            purpose=purpose,
            user_id=user_id,
            bound=bound or user_id is not None,
            mfa_challenge_id=mfa_challenge_id,
            created_at=moment,
            expires_at=moment + LIFETIME,
        )
    )
    await session.flush()
    return challenge


async def spend(
    session: AsyncSession,
    *,
    challenge: bytes,
    purpose: str,
    user_id: uuid.UUID | None = None,
    mfa_challenge_id: uuid.UUID | None = None,
) -> PasskeyChallenge:
    """The issued challenge, marked used; refused when unknown, used or expired. One issued
    for an MFA challenge (`mfa_challenge_id`) answers that one alone."""
    row = await session.scalar(
        select(PasskeyChallenge).where(PasskeyChallenge.challenge_hash == _digest(challenge))
    )
    if (
        row is None
        or row.purpose != purpose
        or (user_id is not None and row.user_id != user_id)
        or row.mfa_challenge_id != mfa_challenge_id
    ):
        raise Refused(
            400,
            "challenge_unknown",
            "This challenge was not issued here; ask again.",
            user_id=user_id,
        )
    moment = now()
    spent = await session.execute(
        update(PasskeyChallenge)
        .where(PasskeyChallenge.id == row.id, PasskeyChallenge.used_at.is_(None))
        .values(used_at=moment)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise Refused(400, "challenge_used", "This challenge was answered already; ask again.")
    if row.expires_at <= moment:
        raise Refused(400, "challenge_expired", "This challenge has expired; ask again.")
    return row
