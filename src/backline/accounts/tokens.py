"""Tokens: what Backline hands out to prove who someone is, and how each is checked.

Access tokens are JWTs signed with HS256 under BACKLINE_SECRET_KEY (PyJWT does the JOSE work).
Verification pins the algorithm (so `alg: none`, RS256-with-the-key-as-public-key and every
other substitution are refused), requires `sub`, `sid`, `iat`, `exp`, `jti`, checks issuer and
audience, and requires the header `typ: at+jwt` (RFC 9068) and the claim `token_use: access`:
no other token, whatever it says, passes as an access token. They live 15 minutes; revocation
before that is the session's business (`backline.accounts.revocation`).

Every other secret is opaque: 32 random bytes, base64url, given to the client once, stored
only as its SHA-256. These are refresh tokens, email-verification, password-reset and
email-change tokens. They need no slow hash: they carry 256 bits of entropy, so a fast hash
leaks nothing that guessing could exploit.

A refresh token's successor is derived, not drawn: HMAC(key, "refresh-successor" + token).
Two tabs refreshing with the same token at once both get the same successor (within the grace
window), with nothing secret stored to make that work; without the key, a successor is as
unpredictable as a random one.

CSRF tokens for cookie sessions are HMAC(key, "csrf" + session ID): bound to the session,
checked in constant time, useless with any other session.

`now()` is the clock seam; tests move it with time-machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt

ALGORITHM = "HS256"
ISSUER = "backline"
AUDIENCE = "backline-api"
ACCESS_TYP = "at+jwt"
OPAQUE_BYTES = 32
LEEWAY_SECONDS = 5  # clock skew between app instances
VERIFIED_CACHE_SIZE = 4096  # tokens; about 2 MB


def now() -> datetime:
    return datetime.now(UTC)


class InvalidToken(Exception):
    """The token is malformed, forged, expired, of another kind, or for another audience."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: datetime


def issue_access(key: bytes, *, user_id: uuid.UUID, session_id: uuid.UUID, minutes: int) -> str:
    issued = now()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(minutes=minutes)).timestamp()),
        "jti": secrets.token_urlsafe(16),
        "token_use": "access",
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"typ": ACCESS_TYP})


def verify_access(key: bytes, token: str) -> AccessClaims:
    """The claims of a valid access token; `InvalidToken` for anything else.

    A client presents one token with every request for its whole life, and PyJWT's decoding
    (base64 checked character by character, JSON, claim checks) costs more than the rest of
    a small request's authentication. So a token that verified is remembered, by its exact
    text and the key, in a bounded cache: a forged or altered token is a different string
    and goes through PyJWT in full. What can change with time is checked on every use.
    """
    claims, issued_at = _verified(key, token)
    moment = now().timestamp()
    if not issued_at - LEEWAY_SECONDS <= moment < claims.expires_at.timestamp() + LEEWAY_SECONDS:
        raise InvalidToken("expired or not yet valid")
    return claims


@lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def _verified(key: bytes, token: str) -> tuple[AccessClaims, int]:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != ACCESS_TYP or header.get("alg") != ALGORITHM:
            raise InvalidToken("not an access token")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["iss", "aud", "sub", "sid", "iat", "exp", "jti"]},
            leeway=LEEWAY_SECONDS,
        )
        if claims.get("token_use") != "access":
            raise InvalidToken("not an access token")
        verified = AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
        return verified, int(claims["iat"])
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError) as exc:
        raise InvalidToken(type(exc).__name__) from None


def new_opaque() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(OPAQUE_BYTES)).rstrip(b"=").decode()


def digest(token: str) -> str:
    """What is stored of an opaque token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def looks_opaque(token: str) -> bool:
    return 40 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)


def refresh_successor(key: bytes, token: str) -> str:
    mac = hmac.new(key, b"refresh-successor\x00" + token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_token(key: bytes, session_id: uuid.UUID) -> str:
    mac = hmac.new(key, b"csrf\x00" + session_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def csrf_valid(key: bytes, session_id: uuid.UUID, presented: str) -> bool:
    return hmac.compare_digest(csrf_token(key, session_id), presented)
