"""HEAD answers every GET route with the GET's headers and no body, over a real server: the
connection stays open for the next request and nothing goes wrong on the server's side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.served import SERVERS, create_user, read_response, served


@pytest.mark.slow
@pytest.mark.parametrize("server_name", SERVERS)
def test_head_requests_on_one_kept_alive_connection(tmp_path: Path, server_name: str) -> None:
    with served(tmp_path, server=server_name, BACKLINE_ENV="test") as server:
        auth = create_user(server, "head@example.com")
        token = auth["Authorization"]
        requests = [
            ("/healthz", "", 200),
            ("/api/me", f"Authorization: {token}\r\n", 200),
            ("/api/me", "", 401),
            ("/verify-email?token=abc", "", 200),  # a page
            ("/docs", "", 200),
        ]
        with server.connect() as sock, sock.makefile("rb") as reader:
            for path, extra, status in requests:
                request = f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"
                sock.sendall(request.encode())
                get = read_response(reader)
                sock.sendall(request.replace("GET", "HEAD", 1).encode())
                head = read_response(reader, head=True)
                assert (get.status, head.status) == (status, status), path
                assert head.headers["content-length"] == get.headers["content-length"] != "0"
                assert head.headers["content-type"] == get.headers["content-type"]
                assert "connection" not in head.headers  # kept alive
            # Had any HEAD been sent a body, this response would start with its bytes.
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            after = read_response(reader)
            assert after.status == 200
            assert json.loads(after.body) == {"status": "ok"}
        output = server.output

    for failure in ("unhandled_exception", "Traceback", "without completing response"):
        assert failure not in output
    access = [json.loads(line) for line in output.splitlines() if '"backline.access"' in line]
    heads = {(line["route"], line["status"]) for line in access if line["method"] == "HEAD"}
    assert heads == {
        ("/healthz", 200),
        ("/api/me", 200),
        ("/api/me", 401),
        ("/verify-email", 200),
        ("/docs", 200),
    }
