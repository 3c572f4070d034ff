"""Traces over OTLP/HTTP from a real `backline serve` with two worker processes and from
`backline worker`, received by a loopback collector stand-in: each request's spans carry its
request ID, with SQL, Redis, S3 and outbound HTTP child spans, and outbound calls carry W3C
`traceparent` beside `X-Request-ID`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from backline.tracing import REQUEST_ID_ATTRIBUTE
from tests.conftest import S3Server
from tests.receivers import ExportedSpan, Receiver, spans_of
from tests.served import served

pytestmark = pytest.mark.slow
SERVER, CLIENT = 2, 3  # OTLP span kinds


def _of_request(spans: list[ExportedSpan], request_id: str) -> list[ExportedSpan]:
    return [s for s in spans if s.attributes.get(REQUEST_ID_ATTRIBUTE) == request_id]


def _complete(request_id: str, *scopes: str):  # type: ignore[no-untyped-def]
    def found(received):  # type: ignore[no-untyped-def]
        spans = _of_request(spans_of(received), request_id)
        have = {s.scope for s in spans}
        server = any(s.kind == SERVER for s in spans)
        return spans if server and all(any(x in h for h in have) for x in scopes) else None

    return found


@pytest.mark.redis
async def test_each_request_is_traced_with_its_children_and_request_id(
    tmp_path: Path, redis_url: str, redis_prefix: str, moto_s3: S3Server
) -> None:
    breach_answer = b"0000000000000000000000000000000000A:1\r\n"
    with (
        Receiver(answer=b"", content_type="application/x-protobuf").running() as collector,
        Receiver(answer=breach_answer, content_type="text/plain").running() as hibp,
        served(
            tmp_path,
            workers=2,
            start_seconds=90,  # each worker also loads OpenTelemetry, on two shared cores
            BACKLINE_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="100",
            BACKLINE_BREACHED_PASSWORD_CHECK="true",
            BACKLINE_HIBP_BASE_URL=hibp.url,
            BACKLINE_REDIS_URL=redis_url,
            BACKLINE_REDIS_PREFIX=redis_prefix,
            BACKLINE_STORAGE_BACKEND="s3",
            BACKLINE_S3_BUCKET=moto_s3.bucket,
            BACKLINE_S3_ENDPOINT_URL=moto_s3.endpoint,
            BACKLINE_S3_REGION="us-east-1",
        ) as server,
    ):
        web = httpx.AsyncClient(base_url=server.url, timeout=30)
        response = await web.post(
            "/api/auth/register",
            json={
                "email": "traced@example.com",
                "password": "a long traced passphrase 42",
                "display_name": "Traced",
            },
            headers={"X-Request-ID": "trace-register-1"},
        )
        assert response.status_code == 202, response.text
        ready = await web.get("/readyz", headers={"X-Request-ID": "trace-ready-1"})
        assert ready.status_code == 200, ready.text
        page = await web.get(
            "/reset-password?token=trace-secret-token-123",
            headers={"X-Request-ID": "trace-page-1"},
        )
        assert page.status_code == 200
        await web.aclose()

        register = collector.wait_for(
            _complete("trace-register-1", "sqlalchemy", "httpx", "backline")
        )
        readiness = collector.wait_for(
            _complete("trace-ready-1", "sqlalchemy", "redis", "botocore")
        )
        collector.wait_for(_complete("trace-page-1"))
        output = server.output

    [root] = [s for s in register if s.kind == SERVER]
    assert root.name == "POST /api/auth/register"
    assert root.attributes["http.route"] == "/api/auth/register"
    in_trace = [s for s in register if s.trace_id == root.trace_id]
    [outbound] = [s for s in in_trace if "httpx" in s.scope]
    assert outbound.kind == CLIENT
    assert any(s.kind == CLIENT and "sqlalchemy" in s.scope for s in in_trace)
    # The email it queued is delivered later, in a trace of its own with the same request ID.
    assert any(s.name == "email.deliver" and s.trace_id != root.trace_id for s in register)

    [call] = [r for r in hibp.snapshot() if r.path.startswith("/range/")]
    assert call.headers["x-request-id"] == "trace-register-1"
    version, trace_id, parent_id, _ = call.headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", root.trace_id, outbound.span_id)

    [ready_root] = [s for s in readiness if s.kind == SERVER]
    assert ready_root.name == "GET /readyz"
    s3 = [s for s in readiness if "botocore" in s.scope]
    assert s3
    assert all(s.trace_id == ready_root.trace_id for s in s3)

    # One JSON event per log line (the console email backend prints its messages on standard
    # output, which the served process shares here); access lines carry the trace ID.
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert "is running at" not in output
    [access] = [
        e for e in lines if e["event"] == "request" and e.get("request_id") == "trace-ready-1"
    ]
    assert access["route"] == "/readyz"
    assert access["status"] == 200
    assert access["trace_id"] == ready_root.trace_id
    assert "trace-secret-token-123" not in output

    exported = b"".join(r.body for r in collector.snapshot())
    assert b"trace-secret-token-123" not in exported
    assert b"a long traced passphrase 42" not in exported


def test_the_worker_traces_each_delivery_under_the_request_id_that_queued_it(
    tmp_path: Path,
) -> None:
    import asyncio
    import subprocess
    import sys

    import structlog

    from backline.config import Settings
    from backline.db import create_engine, create_sessionmaker
    from backline.email import service as outbox
    from backline.migrate import upgrade
    from tests.served import serve_env

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"

    async def queue() -> None:
        settings = Settings(env="test", database_url=database_url)
        engine = create_engine(settings)
        await upgrade(engine, "head", storage_backend="local")
        async with create_sessionmaker(engine)() as session, session.begin():
            with structlog.contextvars.bound_contextvars(request_id="queued-req-1"):
                await outbox.enqueue(
                    session, settings=settings, template="signup_attempt", to_address="w@x.org"
                )
        await engine.dispose()

    asyncio.run(queue())
    with (
        Receiver(answer=b"", content_type="application/x-protobuf").running() as collector,
        Receiver(answer=b'{"id": "sent-1"}').running() as resend,
    ):
        env = serve_env(
            BACKLINE_DATABASE_URL=database_url,
            BACKLINE_EMAIL_BACKEND="resend",
            BACKLINE_RESEND_API_KEY="re_worker_trace_key",
            BACKLINE_RESEND_BASE_URL=resend.url,
            BACKLINE_OTLP_ENDPOINT=collector.url,
        )
        result = subprocess.run(
            [sys.executable, "-m", "backline", "worker", "--once"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "attempted 1 deliveries" in result.stderr
        spans = _of_request(spans_of(collector.wait_for(lambda r: r or None)), "queued-req-1")

    [delivery] = [s for s in spans if s.name == "email.deliver"]
    [call] = [s for s in spans if "httpx" in s.scope]
    assert call.trace_id == delivery.trace_id
    assert call.parent_span_id == delivery.span_id
    [sent] = resend.snapshot()
    assert sent.headers["x-request-id"] == "queued-req-1"
    assert sent.headers["traceparent"].split("-")[1:3] == [call.trace_id, call.span_id]
    assert b"re_worker_trace_key" not in b"".join(r.body for r in collector.snapshot())
