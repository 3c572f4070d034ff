"""The shared outbound client sends the request ID on every call it makes."""

from __future__ import annotations

import httpx

from backline.httpclient import create_http_client
from tests.conftest import LogCapture
from tests.support import RecordingServer


async def test_outbound_call_carries_the_request_id(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    with RecordingServer().running() as upstream:
        response = await client.get(
            "/test/outbound",
            params={"url": f"{upstream.url}/v1/ping"},
            headers={"X-Request-ID": "trace-me-123"},
        )
        generated = await client.get("/test/outbound", params={"url": f"{upstream.url}/again"})
    assert response.status_code == 200
    assert response.json() == {"status": 200}
    first, second = upstream.requests
    assert first.path == "/v1/ping"
    assert first.headers["X-Request-ID"] == "trace-me-123"
    assert first.headers["User-Agent"].startswith("backline/")
    assert second.headers["X-Request-ID"] == generated.headers["x-request-id"]
    [outbound, _] = logs.named("outbound_request")
    assert outbound["request_id"] == "trace-me-123"
    assert outbound["status"] == 200
    assert outbound["host"] == "127.0.0.1"


async def test_outside_a_request_no_id_is_invented() -> None:
    with RecordingServer().running() as upstream:
        async with create_http_client(5.0) as http:
            await http.get(upstream.url)
    [request] = upstream.requests
    assert "X-Request-ID" not in request.headers


async def test_the_default_timeout_is_the_configured_one() -> None:
    async with create_http_client(30.0) as http:
        assert http.timeout == httpx.Timeout(30.0)
