"""The shared outbound client sends the request ID on every call it makes, and trusts the
certificates httpx would, read at its first request."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by its own key: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    moment = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - timedelta(minutes=5))
        .not_valid_after(moment + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def _https_server(cert: Path, key: Path) -> Iterator[str]:
    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_trusted_certificates_are_read_at_the_first_request_as_httpx_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE is honoured as by httpx's default, but read by the first request, not
    when the client is made; without it, certifi's bundle does not trust a self-signed server."""
    cert, key = _self_signed(tmp_path)
    with _https_server(cert, key) as url:
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with create_http_client(5.0) as http:
            context = http._transport._pool._ssl_context  # type: ignore[attr-defined]
            assert context.cert_store_stats()["x509_ca"] == 0
            assert context.verify_mode == ssl.CERT_REQUIRED
            assert context.check_hostname
            assert (await http.get(url)).status_code == 204
            assert context.cert_store_stats()["x509_ca"] == 1
        monkeypatch.delenv("SSL_CERT_FILE")
        async with create_http_client(5.0) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(url)
