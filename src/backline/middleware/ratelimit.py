"""The global per-address limit on every request, and the rate-limit headers on every answer.

Health, readiness and metrics endpoints are exempt: load balancers and scrapers poll them from
a few addresses. The policy is `global` (fails open when Redis is away).

`lookahead(scope, state)`, when given, is called just before the limit is asked, in the same
turn of the event loop: what it starts (the revocation check of `accounts.lookahead`) goes
to Redis in the same write as the limit. Nothing runs past this middleware until the limit
has answered.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backline.errors import ProblemError, problem_response
from backline.ratelimit.clientip import client_ip, rate_key
from backline.ratelimit.deps import add_headers, record, refusal

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        state: State,
        lookahead: Callable[[Scope, State], None] | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.lookahead = lookahead

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_headers(scope, message)
            await send(message)

        limiter = self.state.ratelimiter
        settings = self.state.settings
        ip = rate_key(client_ip(scope, settings.trusted_proxies), settings.rate_limit_ipv6_prefix)
        if self.lookahead is not None:
            self.lookahead(scope, self.state)
        try:
            decision = await limiter.check("global", {"ip": ip}, stats=False)
        except ProblemError as exc:  # storage down and the policy fails closed
            response = problem_response(exc.status, exc.code, exc.detail, headers=exc.headers)
            await response(scope, receive, send)
            return
        record(scope, decision)
        if not decision.allowed:
            error = refusal(decision)
            response = problem_response(
                error.status, error.code, error.detail, headers=error.headers, **error.extra
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
