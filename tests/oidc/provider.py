"""A local OpenID provider on loopback, for the sign-in tests.

It serves discovery, its JWKS, an authorization endpoint that approves at once (redirecting
back with a code) and a token endpoint that checks the client's credentials, the redirect URI
and the PKCE verifier, and answers an id_token signed with a generated RSA key. Each test may
make it misbehave: `claims` overrides claims of the next id_tokens (a wrong nonce or issuer, an
unverified email, an expired token), `sign_with_other_key` signs with a key not in its JWKS,
`discovery_issuer` makes its discovery document name another issuer than its own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "backline-test"
CLIENT_SECRET = "provider-secret-that-must-never-leak-0123"


@dataclass
class Grant:
    redirect_uri: str
    nonce: str
    challenge: str


@dataclass
class Provider:
    port: int
    subject: str = "subject-1"
    email: str = "ann@example.com"
    email_verified: bool = True
    claims: dict[str, Any] = field(default_factory=dict)
    sign_with_other_key: bool = False
    discovery_issuer: str | None = None
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    other: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"})
    )
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: int = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "display_name": "Test ID",
            **overrides,
        }

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.discovery_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != CLIENT_ID or query.get("code_challenge_method") != "S256":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            query["redirect_uri"], query.get("nonce", ""), query.get("code_challenge", "")
        )
        back = urlencode({"code": code, "state": query.get("state", "")})
        return RedirectResponse(f"{query['redirect_uri']}?{back}", status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        grant = self.grants.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (
            grant is None
            or form.get("redirect_uri") != grant.redirect_uri
            or computed.rstrip(b"=").decode() != grant.challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": "Ann Provider",
        }
        claims.update(self.claims)
        key = self.other if self.sign_with_other_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return JSONResponse(
            {"access_token": "at", "token_type": "Bearer", "id_token": id_token, "expires_in": 300}
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )


async def serve(provider: Provider) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        provider.app(),
        host="127.0.0.1",
        port=provider.port,
        log_config=None,
        log_level="critical",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded wait for the socket
        if server.started:
            break
        await asyncio.sleep(0.01)
    return server, task
