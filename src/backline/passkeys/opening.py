"""Opening a session for a person who signed in with a passkey, as password sign-in does.

The same rows as `accounts.signin.admit` writes (the session, its refresh token, a `login_ok`
audit event, here with `method: passkey`), in the caller's transaction, then the same cap on
open sessions (`accounts.sessions.cap`); the tokens answered are the same `TokenPair`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from backline.accounts import sessions as open_sessions
from backline.accounts.auth import TokenPair
from backline.accounts.models import AuthSession, RefreshToken
from backline.accounts.revocation import Revocations
from backline.accounts.tokens import digest, issue_access, new_opaque, now
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo


async def open_session(
    session: AsyncSession,
    *,
    settings: Settings,
    revocations: Revocations,
    user_id: uuid.UUID,
    passkey_id: uuid.UUID,
    client: ClientInfo,
) -> TokenPair:
    moment, session_id, refresh = now(), uuid.uuid4(), new_opaque()
    session.add(
        AuthSession(
            id=session_id,
            user_id=user_id,
            user_agent=client.user_agent,
            ip=client.ip,
            created_at=moment,
            last_used_at=moment,
            expires_at=moment + timedelta(days=settings.refresh_token_days),
        )
    )
    await session.flush()
    session.add(RefreshToken(session_id=session_id, token_hash=digest(refresh), created_at=moment))
    await audit.record(
        session,
        event="login_ok",
        user_id=user_id,
        client=client,
        session_id=str(session_id),
        method="passkey",
        passkey_id=str(passkey_id),
    )
    await open_sessions.cap(
        await session.connection(),
        revocations=revocations,
        user_id=user_id,
        session_id=session_id,
        limit=settings.max_sessions,
        client=client,
    )
    access = issue_access(
        settings.signing_key,
        user_id=user_id,
        session_id=session_id,
        minutes=settings.access_token_minutes,
    )
    return TokenPair(access, refresh, settings.access_token_minutes * 60, session_id)
