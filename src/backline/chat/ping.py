"""`backline chat ping`: ask the configured provider for one short answer, say how it went."""

from __future__ import annotations

import time

from backline.chat.provider import Provider, missing_setting, not_configured
from backline.config import Settings
from backline.errors import ProblemError
from backline.httpclient import create_http_client


async def ping(settings: Settings) -> tuple[bool, str]:
    """(answered, one line for the operator); never shows the key or the provider's body."""
    variable = missing_setting(settings)
    if variable is not None:
        return False, not_configured(variable).detail
    async with create_http_client(settings.http_timeout) as http:
        provider = Provider(settings, http)
        started = time.perf_counter()
        try:
            answer = await provider.complete([{"role": "user", "content": "ping"}], max_tokens=5)
        except ProblemError as exc:
            return False, f"the chat provider did not answer: {exc.code} ({exc.detail})"
    took = round((time.perf_counter() - started) * 1000)
    tokens = f", {answer.usage.total} tokens" if answer.usage else ""
    return True, f"the chat provider answers (model {provider.model}, {took} ms{tokens})"
