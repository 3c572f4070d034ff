"""Passkeys' rules: registering one, listing, renaming and removing them (the API's routes and
the portal's forms call the same functions), and checking an assertion made with one.
Keyword-only functions on the caller's session; none commits.

A refusal is raised as `refusals.Refused` once the challenge it answered is spent and before
anything else is written, so the caller may commit the spent challenge (and its audit event)
and then answer the problem. Every check is made by the server against what it issued and
stored: the challenge, the origin (`Settings.passkey_origin`), the RP ID's hash
(`Settings.passkey_rp_id`), the credential's owner and its signature counter.

WebAuthn's library (py_webauthn, with its ASN.1 and CBOR parsers, some 5 MiB) is imported by
the first ceremony, off the event loop (`backline.lazy`), not at start-up: listing, renaming
and removing passkeys do not need it.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backline import lazy
from backline.accounts import throttle
from backline.accounts.auth import locked
from backline.accounts.emails import InvalidEmail, normalize_email
from backline.accounts.models import User
from backline.accounts.tokens import now
from backline.audit import service as audit
from backline.config import Settings
from backline.context import ClientInfo
from backline.errors import Conflict, NotFound, Unprocessable
from backline.factors import service as factors
from backline.passkeys import challenges
from backline.passkeys.factor import PASSKEY
from backline.passkeys.models import Passkey
from backline.passkeys.refusals import Refused, malformed

if TYPE_CHECKING:
    from webauthn.helpers.structs import AuthenticatorTransport, CollectedClientData

RP_NAME = "Backline"
WEBAUTHN = "webauthn"  # imported by the first ceremony (see the module docstring)
TIMEOUT_MS = int(challenges.LIFETIME.total_seconds() * 1000)
MAX_PER_ACCOUNT = 20
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def check_name(name: str) -> str:
    """A passkey's name: 1 to 100 visible characters once trimmed."""
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 100 or any(
        unicodedata.category(ch) in _HIDDEN_CATEGORIES for ch in cleaned
    ):
        raise Unprocessable(
            "A passkey's name is 1 to 100 visible characters.", code="invalid_passkey_name"
        )
    return cleaned


async def list_own(session: AsyncSession, *, user_id: uuid.UUID) -> Sequence[Passkey]:
    rows = await session.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at, Passkey.id)
    )
    return rows.all()


async def own(session: AsyncSession, *, user_id: uuid.UUID, passkey_id: uuid.UUID) -> Passkey:
    """One of the user's passkeys; another's (or none) is 404 alike."""
    row = await session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
    )
    if row is None:
        raise NotFound("No such passkey.", code="passkey_not_found")
    return row


async def rename(
    session: AsyncSession, *, user_id: uuid.UUID, passkey_id: uuid.UUID, name: str
) -> Passkey:
    """Rename one of the user's passkeys: 404 `passkey_not_found` when it is not theirs
    (whatever the name), else 422 `invalid_passkey_name` for a name `check_name` refuses."""
    row = await own(session, user_id=user_id, passkey_id=passkey_id)
    cleaned = check_name(name)
    row.name = cleaned
    await session.flush()
    return row


async def remove(
    session: AsyncSession,
    *,
    settings: Settings,
    user: User,
    passkey_id: uuid.UUID,
    client: ClientInfo,
) -> Passkey:
    """Remove one of the user's passkeys, recorded as the `passkey_removed` audit event; the
    removed row is answered (its name for a notice). 404 when it is not theirs, 409
    `factor_required` when the account's role needs a second factor and this passkey is the
    last one it holds (no other passkey, no authenticator app), as removing the authenticator
    app is refused. Nothing is written before a refusal."""
    row = await own(session, user_id=user.id, passkey_id=passkey_id)
    others = await session.scalar(
        select(func.count())
        .select_from(Passkey)
        .where(Passkey.user_id == user.id, Passkey.id != row.id)
    )
    if not others:
        await factors.refuse_last_factor(session, settings=settings, user=user, removing=PASSKEY)
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, event="passkey_removed", user_id=user.id, client=client, passkey_id=str(row.id)
    )
    return row


def _transports(text: str) -> list[AuthenticatorTransport]:
    from webauthn.helpers.structs import AuthenticatorTransport  # loaded by the caller

    known = {t.value for t in AuthenticatorTransport}
    return [AuthenticatorTransport(t) for t in text.split(",") if t in known]


# ----------------------------------------------------------------------------- registration


async def registration_options(session: AsyncSession, *, settings: Settings, user: User) -> str:
    """PublicKeyCredentialCreationOptions as JSON, its challenge kept for this user."""
    await lazy.load(WEBAUTHN)
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    existing = await list_own(session, user_id=user.id)
    if len(existing) >= MAX_PER_ACCOUNT:
        raise Conflict(
            f"An account holds at most {MAX_PER_ACCOUNT} passkeys; remove one first.",
            code="too_many_passkeys",
        )
    challenge = await challenges.issue(session, purpose="register", user_id=user.id)
    options = generate_registration_options(
        rp_id=settings.passkey_rp_id,
        rp_name=RP_NAME,
        user_id=user.id.bytes,
        user_name=user.email,
        user_display_name=user.display_name,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(p.credential_id), transports=_transports(p.transports)
            )
            for p in existing
        ],
    )
    return options_to_json(options)


def _client_data(raw: bytes) -> CollectedClientData:
    from webauthn.helpers import parse_client_data_json  # loaded by the caller

    try:
        return parse_client_data_json(raw)
    except Exception:
        raise malformed() from None


def _check_origin(
    settings: Settings, client_data: CollectedClientData, user_id: uuid.UUID | None
) -> None:
    if client_data.origin != settings.passkey_origin:
        raise Refused(
            400, "wrong_origin", "The passkey was used from another origin.", user_id=user_id
        )


def _check_rp_id(settings: Settings, rp_id_hash: bytes, user_id: uuid.UUID | None) -> None:
    if rp_id_hash != hashlib.sha256(settings.passkey_rp_id.encode()).digest():
        raise Refused(
            400, "wrong_rp_id", "The passkey was made for another relying party.", user_id=user_id
        )


async def register(
    session: AsyncSession,
    *,
    settings: Settings,
    user: User,
    name: str,
    credential: dict[str, Any],
) -> Passkey:
    """Verify a registration answering this user's challenge and store the new passkey."""
    await lazy.load(WEBAUTHN)
    from webauthn import verify_registration_response
    from webauthn.helpers import (
        bytes_to_base64url,
        parse_attestation_object,
        parse_registration_credential_json,
    )
    from webauthn.helpers.exceptions import WebAuthnException

    cleaned = check_name(name)
    try:
        parsed = parse_registration_credential_json(credential)
    except Exception:
        raise malformed() from None
    client_data = _client_data(parsed.response.client_data_json)
    await challenges.spend(
        session, challenge=client_data.challenge, purpose="register", user_id=user.id
    )
    owner: uuid.UUID | None = user.id
    _check_origin(settings, client_data, user_id=owner)
    try:
        attestation = parse_attestation_object(parsed.response.attestation_object)
    except Exception:
        raise malformed() from None
    _check_rp_id(settings, attestation.auth_data.rp_id_hash, user_id=owner)
    try:
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=client_data.challenge,
            expected_rp_id=settings.passkey_rp_id,
            expected_origin=settings.passkey_origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError) as exc:
        raise Refused(
            400, "invalid_attestation", "The new passkey could not be verified.", user_id=owner
        ) from exc
    credential_id = bytes_to_base64url(verified.credential_id)
    taken = await session.scalar(
        select(func.count()).select_from(Passkey).where(Passkey.credential_id == credential_id)
    )
    if taken:
        raise Refused(409, "passkey_exists", "This passkey is registered already.", user_id=owner)
    row = Passkey(
        user_id=user.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=",".join(t.value for t in parsed.response.transports or [])[:200],
        name=cleaned,
        created_at=now(),
    )
    session.add(row)
    await session.flush()
    return row


# ----------------------------------------------------------------------------- sign-in


async def authentication_options(
    session: AsyncSession, *, settings: Settings, email: str | None
) -> str:
    """PublicKeyCredentialRequestOptions as JSON, for a discoverable passkey.

    No credential is listed, whether or not an address is given, so the answer tells nothing
    of which addresses have passkeys. A given address binds the challenge to its account: an
    assertion made with another account's passkey is then refused (and with any passkey, when
    the address has no account).
    """
    await lazy.load(WEBAUTHN)
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    user_id = None
    if email is not None:
        try:
            normalized = normalize_email(email)
        except InvalidEmail:
            normalized = None
        if normalized is not None:
            user_id = await session.scalar(
                select(User.id).where(func.lower(User.email) == normalized)
            )
    challenge = await challenges.issue(
        session, purpose="authenticate", user_id=user_id, bound=email is not None
    )
    options = generate_authentication_options(
        rp_id=settings.passkey_rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


@dataclass(frozen=True)
class Asserted:
    user: User
    passkey: Passkey


@dataclass(frozen=True)
class _Verified:
    passkey: Passkey
    issued_to: uuid.UUID | None  # the account the challenge names, if any
    new_sign_count: int


async def _verify_assertion(
    session: AsyncSession,
    *,
    settings: Settings,
    credential: dict[str, Any],
    purpose: str,
    user_id: uuid.UUID | None = None,
    mfa_challenge_id: uuid.UUID | None = None,
) -> _Verified:
    """Every check of an assertion but whose it may be: the challenge spent (issued for
    `purpose`, and for `user_id` and `mfa_challenge_id` when given), the origin, the RP ID, a
    registered passkey whose owner the user handle names, a counter that moved, the signature."""
    await lazy.load(WEBAUTHN)
    from webauthn import verify_authentication_response
    from webauthn.helpers import (
        bytes_to_base64url,
        parse_authentication_credential_json,
        parse_authenticator_data,
    )
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        parsed = parse_authentication_credential_json(credential)
    except Exception:
        raise malformed() from None
    client_data = _client_data(parsed.response.client_data_json)
    issued = await challenges.spend(
        session,
        challenge=client_data.challenge,
        purpose=purpose,
        user_id=user_id,
        mfa_challenge_id=mfa_challenge_id,
    )
    _check_origin(settings, client_data, user_id=issued.user_id)
    try:
        auth_data = parse_authenticator_data(parsed.response.authenticator_data)
    except Exception:
        raise malformed() from None
    _check_rp_id(settings, auth_data.rp_id_hash, user_id=issued.user_id)
    if parsed.id != bytes_to_base64url(parsed.raw_id):
        raise malformed()
    passkey = await session.scalar(select(Passkey).where(Passkey.credential_id == parsed.id))
    if passkey is None:
        raise Refused(
            401,
            "unknown_credential",
            "This passkey is not registered here.",
            user_id=issued.user_id,
        )
    owner = passkey.user_id
    handle = parsed.response.user_handle
    if (issued.bound and issued.user_id != passkey.user_id) or (
        handle is not None and handle != passkey.user_id.bytes
    ):
        raise Refused(
            401,
            "credential_mismatch",
            "This passkey belongs to another account.",
            user_id=owner,
        )
    stored = passkey.sign_count
    if (auth_data.sign_count > 0 or stored > 0) and auth_data.sign_count <= stored:
        raise Refused(
            401,
            "sign_count_replayed",
            "This passkey's signature counter went backwards: it may have been copied.",
            user_id=owner,
        )
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=client_data.challenge,
            expected_rp_id=settings.passkey_rp_id,
            expected_origin=settings.passkey_origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=stored,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError) as exc:
        raise Refused(
            401, "invalid_assertion", "The passkey's signature is wrong.", user_id=owner
        ) from exc
    return _Verified(passkey, issued.user_id, verified.new_sign_count)


async def _count_use(session: AsyncSession, verified: _Verified) -> None:
    """Record the passkey's new counter and use; refused when another use counted first."""
    passkey = verified.passkey
    counted = await session.execute(
        update(Passkey)
        .where(Passkey.id == passkey.id, Passkey.sign_count == passkey.sign_count)
        .values(sign_count=verified.new_sign_count, last_used_at=now())
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount != 1:  # type: ignore[attr-defined]  # another use counted first
        raise Refused(
            401,
            "sign_count_replayed",
            "This passkey was used at the same moment elsewhere.",
            user_id=passkey.user_id,
        )


async def authenticate(
    session: AsyncSession, *, settings: Settings, credential: dict[str, Any]
) -> Asserted:
    """Verify an assertion answering a sign-in challenge; the passkey's use is recorded."""
    verified = await _verify_assertion(
        session, settings=settings, credential=credential, purpose="authenticate"
    )
    owner = verified.passkey.user_id
    user = await session.get(User, owner)
    if user is None:  # removed meanwhile, with its passkeys
        raise Refused(401, "unknown_credential", "This passkey is not registered here.")
    if (paused := await throttle.locked_for(session, key=throttle.key_for(user.email))) is not None:
        failure = locked(paused)
        raise Refused(
            failure.status,
            failure.code,
            failure.detail,
            headers={"Retry-After": str(paused)},
            user_id=owner,
        )
    if not user.is_verified:
        raise Refused(
            403,
            "email_not_verified",
            "Confirm your email address first; we sent you a link.",
            user_id=owner,
        )
    await _count_use(session, verified)
    return Asserted(user, verified.passkey)


# ----------------------------------------------------------------------------- second step


async def second_step_options(
    session: AsyncSession, *, settings: Settings, user: User, mfa_challenge_id: uuid.UUID
) -> str:
    """PublicKeyCredentialRequestOptions as JSON for the second step of `user`'s sign-in: the
    account's passkeys listed, the challenge good for that MFA challenge alone.

    409 `no_passkey` when the account holds none."""
    await lazy.load(WEBAUTHN)
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

    held = await list_own(session, user_id=user.id)
    if not held:
        raise Conflict("This account has no passkey; use another method.", code="no_passkey")
    challenge = await challenges.issue(
        session, purpose="second_step", user_id=user.id, mfa_challenge_id=mfa_challenge_id
    )
    options = generate_authentication_options(
        rp_id=settings.passkey_rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
        allow_credentials=[
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(p.credential_id), transports=_transports(p.transports)
            )
            for p in held
        ],
    )
    return options_to_json(options)


async def second_step(
    session: AsyncSession,
    *,
    settings: Settings,
    user: User,
    mfa_challenge_id: uuid.UUID,
    credential: dict[str, Any],
) -> Passkey:
    """Verify an assertion completing `user`'s MFA challenge `mfa_challenge_id`: it must answer
    a passkey challenge issued for that MFA challenge, with one of `user`'s own passkeys. The
    passkey's use is recorded. The lockout and the challenge's tries are the caller's (see
    `factors.challenge.redeem`)."""
    verified = await _verify_assertion(
        session,
        settings=settings,
        credential=credential,
        purpose="second_step",
        user_id=user.id,
        mfa_challenge_id=mfa_challenge_id,
    )
    if verified.passkey.user_id != user.id:
        raise Refused(
            401,
            "credential_mismatch",
            "This passkey belongs to another account.",
            user_id=user.id,
        )
    await _count_use(session, verified)
    return verified.passkey
