"""The chat provider: any OpenAI-compatible `/v1/chat/completions` endpoint.

The official `openai` package speaks the protocol (request shapes, server-sent event parsing,
retries with exponential backoff and jitter on 408/409/429/5xx and connection errors, honouring
`Retry-After`). It is given the app's one shared HTTP client, so every call carries the
request's `X-Request-ID` and is logged and counted like any other outbound call. Its retries
happen inside `create()`, before a streamed answer is handed back: never after the first byte.

What the package does not do, and this module adds:

* a first-byte, idle and total limit on a *streamed* answer (httpx has only per-read timeouts,
  and the package's timeout is per request): the relay in `streaming` measures those;
* logging the provider's own request id (`x-request-id`, or `openai-request-id`) beside ours;
* mapping failures to problems: 502 `chat_upstream_error` or 504 `chat_upstream_timeout`. The
  provider's error body is never passed on or logged (it may echo the prompt or the key), only
  its status.

The package (some 30 MB, and most of a second to import) is imported when a `Provider` is
built, at start-up and only where the assistant is configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from backline.config import Settings
from backline.errors import ProblemError, ServiceUnavailable
from backline.logging import get_logger
from backline.metrics.recording import count_chat_tokens

if TYPE_CHECKING:
    from openai import AsyncStream
    from openai.types.chat import ChatCompletionMessageParam

    # A streamed answer, chunk by chunk, each the provider's JSON object.
    Chunks = AsyncStream[Any]

log = get_logger(__name__)
# Local servers (Ollama, llama.cpp) need no key; the package insists on one, and sends this.
NO_KEY = "not-needed"


class ChatNotConfigured(ServiceUnavailable):
    code = "chat_not_configured"


class UpstreamError(ProblemError):
    status, code, title = 502, "chat_upstream_error", "Bad Gateway"


class UpstreamTimeout(ProblemError):
    status, code, title = 504, "chat_upstream_timeout", "Gateway Timeout"


def missing_setting(settings: Settings) -> str | None:
    """The variable to set before the assistant can answer, or None when it is configured."""
    if not settings.chat_base_url:
        return "BACKLINE_CHAT_BASE_URL"
    if not settings.chat_model:
        return "BACKLINE_CHAT_MODEL"
    return None


def not_configured(variable: str) -> ChatNotConfigured:
    return ChatNotConfigured(f"The assistant is not configured: set {variable}.", variable=variable)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage | None


def upstream_id(headers: httpx.Headers | Any) -> str | None:
    value = headers.get("x-request-id") or headers.get("openai-request-id")
    return str(value)[:128] if value else None


def problem_for(exc: BaseException) -> ProblemError:
    """The client-facing problem for a provider failure (logged here, without its body)."""
    import openai  # a failure comes from a Provider, which has imported it

    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        log.warning("chat_upstream_timeout")
        return UpstreamTimeout("The assistant's provider did not answer in time.")
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    upstream = upstream_id(exc.response.headers) if isinstance(exc, openai.APIStatusError) else None
    log.warning(
        "chat_upstream_failed",
        error=type(exc).__name__,
        upstream_status=status,
        upstream_request_id=upstream,
    )
    return UpstreamError("The assistant's provider failed to answer.", upstream_status=status)


class Provider:
    """One configured provider, shared by the process (it holds no connection of its own)."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        import openai  # imported here: only a process with the assistant configured needs it

        key = settings.chat_api_key.get_secret_value() if settings.chat_api_key else NO_KEY
        self.model = settings.chat_model or ""
        self.settings = settings
        self.client = openai.AsyncOpenAI(
            base_url=settings.chat_base_url,
            api_key=key,
            # The package types its client as httpx2's, and accepts (and tests for) httpx's.
            http_client=http,  # type: ignore[arg-type]
            max_retries=settings.chat_max_retries,
            timeout=openai.Timeout(
                settings.chat_timeout,
                connect=settings.chat_connect_timeout,
                read=settings.chat_first_byte_timeout,
            ),
        )

    async def complete(
        self, messages: Sequence[ChatCompletionMessageParam], *, max_tokens: int | None = None
    ) -> Completion:
        """One whole answer within `chat_timeout`; raises `UpstreamError`/`UpstreamTimeout`."""
        import openai  # imported by __init__ already

        try:
            async with asyncio.timeout(self.settings.chat_timeout):
                raw = await self.client.chat.completions.with_raw_response.create(
                    model=self.model,
                    messages=list(messages),
                    max_tokens=max_tokens if max_tokens else openai.omit,
                )
                log.info("chat_upstream", upstream_request_id=upstream_id(raw.headers))
                answer = raw.parse()
        except (openai.OpenAIError, TimeoutError) as exc:
            raise problem_for(exc) from None
        text = (answer.choices[0].message.content or "") if answer.choices else ""
        usage = answer.usage
        if usage is not None:
            count_chat_tokens(prompt=usage.prompt_tokens, completion=usage.completion_tokens)
        return Completion(
            text,
            Usage(usage.prompt_tokens, usage.completion_tokens) if usage is not None else None,
        )

    async def open_stream(self, messages: Sequence[ChatCompletionMessageParam]) -> Chunks:
        """Start a streamed answer: returns once the provider has answered 200 (after any
        retries), within the first-byte limit; raises `UpstreamError`/`UpstreamTimeout`.

        The package's generic `post` is used rather than `chat.completions.create`: it keeps
        the package's retries, error mapping and event parsing, but hands each chunk back as
        the JSON object it is. Building the typed model of every chunk (and validating the
        request body against its type) cost more than relaying the chunk."""
        import openai  # imported by __init__ already

        body = {
            "model": self.model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        timeout = openai.Timeout(
            self.settings.chat_total_timeout,
            connect=self.settings.chat_connect_timeout,
            read=self.settings.chat_idle_timeout,
        )
        try:
            async with asyncio.timeout(self.settings.chat_first_byte_timeout):
                stream = await self.client.post(
                    "/chat/completions",
                    cast_to=object,
                    body=body,
                    options={"timeout": timeout},
                    stream=True,
                    stream_cls=openai.AsyncStream[Any],
                )
        except (openai.OpenAIError, TimeoutError) as exc:
            raise problem_for(exc) from None
        log.info(
            "chat_upstream", upstream_request_id=upstream_id(stream.response.headers), stream=True
        )
        return stream


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def deltas(stream: Chunks) -> AsyncIterator[str | Usage]:
    """The text deltas of a streamed answer, then its usage when the provider reports one.

    Chunks are plain JSON objects; a field of the wrong shape is skipped, never trusted."""
    async for chunk in stream:
        usage = _mapping(chunk).get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            reported = Usage(
                prompt if isinstance(prompt, int) else 0,
                completion if isinstance(completion, int) else 0,
            )
            count_chat_tokens(prompt=reported.prompt_tokens, completion=reported.completion_tokens)
            yield reported
        choices = _mapping(chunk).get("choices")
        for choice in choices if isinstance(choices, list) else ():
            content = _mapping(_mapping(choice).get("delta")).get("content")
            if isinstance(content, str) and content:
                yield content
