"""Talking to an OpenID provider: discovery, its keys, the code exchange, the id_token's checks.

Everything goes through the app's one HTTP client (`backline.httpclient`). The discovery
document and the key set are cached per issuer for an hour; an id_token whose key id the cached
set lacks makes one fresh fetch of the set (the provider rotated its keys). JOSE work (JWKS,
signature, claims) is done by joserfc, Authlib's JOSE library; PKCE's S256 challenge by Authlib.

The id_token is checked for: a signature by a key of the provider's JWKS (RS256/ES256/PS256,
never `none` or HMAC), `iss` equal to the configured issuer, `aud` naming our client id (and
`azp` when there are several audiences), `exp` in the future and `iat` present, the `nonce`
sent, and a `sub`.

joserfc and Authlib are imported at the first sign-in through a provider, off the event loop
(`backline.lazy`), not at start-up: a deployment without OpenID providers never loads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx

from backline import lazy
from backline.config import OidcProvider
from backline.oidc import errors
from backline.oidc.errors import refused

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

CACHE_SECONDS = 3600
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
LEEWAY_SECONDS = 60
MAX_DOCUMENT_BYTES = 256 * 1024
# Imported at first use (see the module docstring): the keys, the id_token; PKCE's challenge.
JOSERFC, PKCE = "joserfc.jwt", "authlib.oauth2.rfc7636"


def _key_set(document: dict[str, Any]) -> KeySet:
    from joserfc.jwk import KeySet  # loaded by the caller (`Directory._entry`, `validate`)

    return KeySet.import_key_set(cast(Any, document))


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass
class _Cached:
    metadata: Metadata
    keys: KeySet
    fetched: float


@dataclass
class Directory:
    """The providers' discovery documents and key sets, fetched on first use and cached."""

    http: httpx.AsyncClient
    cached: dict[str, _Cached] = field(default_factory=dict)

    async def metadata(self, provider: OidcProvider) -> Metadata:
        return (await self._entry(provider)).metadata

    async def keys(self, provider: OidcProvider, *, fresh: bool = False) -> KeySet:
        entry = await self._entry(provider)
        if fresh:
            entry.keys = _key_set(await self._json(entry.metadata.jwks_uri))
        return entry.keys

    async def _entry(self, provider: OidcProvider) -> _Cached:
        entry = self.cached.get(provider.issuer)
        if entry is None or time.monotonic() - entry.fetched > CACHE_SECONDS:
            await lazy.load(JOSERFC)
            from joserfc.errors import JoseError

            metadata = await self._discover(provider)
            try:
                keys = _key_set(await self._json(metadata.jwks_uri))
            except (JoseError, ValueError, KeyError, TypeError):
                raise refused(*errors.UNAVAILABLE, "The provider's keys are unreadable.") from None
            entry = _Cached(metadata, keys, time.monotonic())
            self.cached[provider.issuer] = entry
        return entry

    async def _discover(self, provider: OidcProvider) -> Metadata:
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._json(url)
        try:
            metadata = Metadata(
                issuer=str(document["issuer"]),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
            )
        except KeyError:
            raise refused(*errors.UNAVAILABLE, "The provider's discovery is incomplete.") from None
        if metadata.issuer != provider.issuer:  # OpenID Connect Discovery 1.0, section 4.3
            raise refused(*errors.UNAVAILABLE, "The provider's discovery names another issuer.")
        return metadata

    async def _json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError:
            raise refused(*errors.UNAVAILABLE, "The provider cannot be reached.") from None
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
            raise refused(*errors.UNAVAILABLE, "The provider answered with an error.")
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise refused(*errors.UNAVAILABLE, "The provider answered something unreadable.")
        return document


async def challenge(verifier: str) -> str:
    await lazy.load(PKCE)
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    return str(create_s256_code_challenge(verifier))


async def exchange(
    http: httpx.AsyncClient,
    *,
    metadata: Metadata,
    provider: OidcProvider,
    code: str,
    verifier: str,
    redirect_uri: str,
) -> str:
    """The authorization code traded (with the PKCE verifier) for the id_token."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    auth = (provider.client_id, provider.client_secret.get_secret_value())
    try:
        response = await http.post(metadata.token_endpoint, data=form, auth=auth)
    except httpx.HTTPError:
        raise refused(*errors.UNAVAILABLE, "The provider cannot be reached.") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    token = body.get("id_token") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(token, str):
        raise refused(*errors.EXCHANGE_FAILED, "The provider did not accept the sign-in code.")
    return token


@dataclass(frozen=True)
class Identity:
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def _bad(detail: str) -> errors.OidcError:
    return refused(*errors.BAD_TOKEN, detail)


async def validate(
    directory: Directory, *, provider: OidcProvider, id_token: str, nonce: str
) -> Identity:
    """The id_token's claims, once its signature and claims are checked (see the docstring)."""
    await lazy.load(JOSERFC)
    from joserfc import jwt
    from joserfc.errors import (
        ExpiredTokenError,
        InvalidClaimError,
        InvalidKeyIdError,
        JoseError,
        MissingClaimError,
    )

    keys = await directory.keys(provider)
    try:
        try:
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            keys = await directory.keys(provider, fresh=True)  # rotated keys: fetched once more
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError):
        raise _bad("The id_token's signature is not the provider's.") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        sub={"essential": True},
        aud={"essential": True, "value": provider.client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _bad("The id_token has expired.") from None
    except (InvalidClaimError, MissingClaimError) as exc:
        raise _bad(f"The id_token's {exc.claim} claim is wrong or missing.") from None
    except JoseError:
        raise _bad("The id_token's claims are not acceptable.") from None
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != provider.client_id:
        raise _bad("The id_token's azp claim is wrong or missing.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255:
        raise _bad("The id_token's sub claim is wrong or missing.")
    email = claims.get("email")
    name = claims.get("name")
    return Identity(
        subject=subject,
        email=email if isinstance(email, str) else None,
        email_verified=claims.get("email_verified") is True,
        name=name if isinstance(name, str) else None,
    )
