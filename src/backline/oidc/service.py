"""OpenID Connect sign-in and linking: the rules, without HTTP.

* `begin` records an attempt (state digest, nonce, PKCE verifier, the browser's binding, the
  intent) and answers the provider's authorization URL; attempts expired over a day ago go.
* `claim` takes the attempt named by a callback's `state`, once: it is marked used in a
  transaction of its own before the code is exchanged, so a replayed callback is refused
  (`oidc_state_used`) whatever happens next. The browser must hold the cookie the attempt was
  started with.
* `complete` applies the checked identity: sign in (an identity already linked; else the
  account with that verified email gets it linked; else, if `BACKLINE_OIDC_CREATE_ACCOUNTS`, a
  new verified account without a password), or link it to the signed-in account.
* `unlink` refuses to take an account's last way to sign in.

An account created here has no usable password (`NO_PASSWORD`, which no password matches);
forgot-password sets one. An existing account whose address was never confirmed gets the
identity, its address confirmed, and its password made unusable: whoever set that password
never proved they hold the address (an account "pre-hijacked" this way stays with the
address's owner). Its `oidc_linked` event says so (`address_confirmed`, and `password_cleared`
when a password was set).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backline import lazy
from backline.accounts.emails import InvalidEmail, normalize_email
from backline.accounts.models import User
from backline.accounts.names import check_display_name
from backline.accounts.tokens import digest, new_opaque
from backline.audit import service as audit
from backline.config import OidcProvider, Settings
from backline.context import ClientInfo
from backline.db import utcnow
from backline.errors import NotFound, ProblemError
from backline.oidc import errors
from backline.oidc.errors import refused
from backline.oidc.models import OidcAttempt, OidcIdentity
from backline.oidc.provider import PKCE, Identity, Metadata, challenge

ATTEMPT_MINUTES = 10
NO_PASSWORD = "!no-password"  # noqa: S105 - not a hash: no password verifies against it


class Intent:
    SIGN_IN = "sign_in"
    LINK = "link"


def has_password(user: User) -> bool:
    return not user.password_hash.startswith("!")


def provider_of(settings: Settings, name: str) -> OidcProvider:
    provider = settings.oidc_providers.get(name)
    if provider is None:
        raise refused(*errors.UNKNOWN_PROVIDER, "No such sign-in provider is configured.")
    return provider


def redirect_uri(settings: Settings, name: str) -> str:
    return f"{settings.public_url.rstrip('/')}/api/auth/oidc/{name}/callback"


@dataclass(frozen=True)
class Begun:
    authorization_url: str
    browser: str  # the cookie value binding the attempt to this browser


async def begin(
    session: AsyncSession,
    *,
    settings: Settings,
    name: str,
    metadata: Metadata,
    intent: str,
    user_id: uuid.UUID | None = None,
) -> Begun:
    provider = provider_of(settings, name)
    await lazy.load(PKCE)  # Authlib, imported at the first sign-in (see `oidc.provider`)
    from authlib.common.security import generate_token

    state, nonce, browser = new_opaque(), new_opaque(), new_opaque()
    verifier = generate_token(64)
    moment = utcnow()
    # Attempts never come back from are cleared here, a day after they expired.
    await session.execute(
        delete(OidcAttempt).where(OidcAttempt.expires_at < moment - timedelta(days=1))
    )
    session.add(
        OidcAttempt(
            state_hash=digest(state),
            browser_hash=digest(browser),
            provider=name,
            intent=intent,
            user_id=user_id,
            nonce=nonce,
            code_verifier=verifier,
            created_at=moment,
            expires_at=moment + timedelta(minutes=ATTEMPT_MINUTES),
        )
    )
    await session.flush()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri(settings, name),
            "scope": provider.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": await challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    endpoint = metadata.authorization_endpoint
    return Begun(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", browser)


@dataclass(frozen=True)
class Claimed:
    provider: str
    intent: str
    user_id: uuid.UUID | None
    nonce: str
    code_verifier: str


async def claim(
    session: AsyncSession, *, name: str, state: str | None, browser: str | None
) -> Claimed:
    """Mark the attempt of `state` used (commit before going on); refuse one unusable."""
    if not state or len(state) > 200:
        raise refused(*errors.BAD_STATE, "The sign-in's state is missing or unknown.")
    moment = utcnow()
    state_hash = digest(state)
    taken = await session.execute(
        update(OidcAttempt)
        .where(
            OidcAttempt.state_hash == state_hash,
            OidcAttempt.provider == name,
            OidcAttempt.used_at.is_(None),
            OidcAttempt.expires_at > moment,
        )
        .values(used_at=moment)
        .execution_options(synchronize_session=False)
    )
    attempt = await session.scalar(select(OidcAttempt).where(OidcAttempt.state_hash == state_hash))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        if attempt is not None and attempt.used_at is not None and attempt.provider == name:
            raise refused(*errors.USED_STATE, "This sign-in was already used; start again.")
        raise refused(*errors.BAD_STATE, "The sign-in's state is unknown or has expired.")
    assert attempt is not None
    if not browser or not hmac.compare_digest(attempt.browser_hash, digest(browser)):
        raise refused(*errors.BAD_STATE, "This sign-in was started in another browser.")
    return Claimed(name, attempt.intent, attempt.user_id, attempt.nonce, attempt.code_verifier)


@dataclass(frozen=True)
class Completed:
    user_id: uuid.UUID
    intent: str
    created: bool


def _address(identity: Identity) -> str:
    if not identity.email or not identity.email_verified:
        raise refused(*errors.EMAIL_UNVERIFIED, "The provider has not verified your email.")
    try:
        return normalize_email(identity.email)
    except InvalidEmail:
        raise refused(*errors.EMAIL_UNVERIFIED, "The provider's email is not usable.") from None


def _display_name(identity: Identity, email: str) -> str:
    for candidate in (identity.name, email.split("@", 1)[0]):
        try:
            return check_display_name((candidate or "")[:100])
        except ProblemError:
            continue
    return "Member"


async def complete(
    session: AsyncSession,
    *,
    settings: Settings,
    claimed: Claimed,
    identity: Identity,
    client: ClientInfo,
) -> Completed:
    """Sign in or link with a checked identity, in the caller's transaction."""
    email = _address(identity)
    name, moment = claimed.provider, utcnow()
    linked = await session.scalar(
        select(OidcIdentity).where(
            OidcIdentity.provider == name, OidcIdentity.subject == identity.subject
        )
    )
    created = False
    confirmed: dict[str, Any] = {}  # the audit's account of an address confirmed here
    if claimed.intent == Intent.LINK:
        if claimed.user_id is None:
            raise refused(*errors.BAD_STATE, "The sign-in's state is unknown or has expired.")
        if linked is not None and linked.user_id != claimed.user_id:
            raise refused(*errors.LINKED_ELSEWHERE, "This identity belongs to another account.")
        user_id = claimed.user_id
        if linked is None:
            linked = await _link(
                session, user_id=user_id, name=name, subject=identity.subject, email=email
            )
            await audit.record(
                session, event="oidc_linked", user_id=user_id, client=client, provider=name
            )
    else:
        if linked is not None:
            user_id = linked.user_id
        else:
            user = await session.scalar(select(User).where(func.lower(User.email) == email))
            if user is None:
                if not settings.oidc_create_accounts:
                    raise refused(*errors.NO_ACCOUNT, "No account uses this email address.")
                user = User(
                    email=email,
                    display_name=_display_name(identity, email),
                    password_hash=NO_PASSWORD,
                    email_verified_at=moment,
                )
                session.add(user)
                await session.flush()
                created = True
                await audit.record(
                    session, event="register", user_id=user.id, client=client, provider=name
                )
            elif user.email_verified_at is None:
                confirmed = {"address_confirmed": True, "password_cleared": has_password(user)}
                user.email_verified_at = moment  # the provider vouches for the address
                user.password_hash = NO_PASSWORD  # set by someone who never proved it
                user.password_changed_at = moment
            user_id = user.id
            linked = await _link(
                session, user_id=user_id, name=name, subject=identity.subject, email=email
            )
            await audit.record(
                session,
                event="oidc_linked",
                user_id=user_id,
                client=client,
                provider=name,
                **confirmed,
            )
    linked.last_used_at = moment
    linked.email = email
    await session.flush()
    return Completed(user_id, claimed.intent, created)


async def _link(
    session: AsyncSession, *, user_id: uuid.UUID, name: str, subject: str, email: str
) -> OidcIdentity:
    row = OidcIdentity(user_id=user_id, provider=name, subject=subject, email=email)
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise refused(
            *errors.LINKED_ELSEWHERE, "This identity was just linked elsewhere."
        ) from None
    return row


async def identities(session: AsyncSession, *, user_id: uuid.UUID) -> list[OidcIdentity]:
    rows = await session.scalars(
        select(OidcIdentity).where(OidcIdentity.user_id == user_id).order_by(OidcIdentity.linked_at)
    )
    return list(rows.all())


async def unlink(
    session: AsyncSession, *, user: User, identity_id: uuid.UUID, client: ClientInfo
) -> None:
    """Remove one of the account's identities, unless it is its last way to sign in."""
    rows = await session.scalars(
        select(OidcIdentity).where(OidcIdentity.user_id == user.id).with_for_update()
    )
    mine = list(rows.all())
    target = next((row for row in mine if row.id == identity_id), None)
    if target is None:
        raise NotFound("No such linked identity.", code="oidc_identity_not_found")
    if len(mine) == 1 and not has_password(user):
        raise refused(
            *errors.LAST_SIGN_IN,
            "This is your only way to sign in: set a password or link another first.",
        )
    await session.delete(target)
    await audit.record(
        session, event="oidc_unlinked", user_id=user.id, client=client, provider=target.provider
    )
    await session.flush()
