"""`backline serve` defends itself: a client slower than the header timeout is cut, and a
process holds at most its cap of connections, refusing the next with 503."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.served import Served, read_response, served

CAP = 4
HEADER_TIMEOUT = 1.0
GIVE_UP_AFTER = 8.0  # the longest a test waits for the server to act; far above the timeout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir: Path = tmp_path_factory.mktemp("serve")
    with served(
        workdir,
        BACKLINE_ENV="test",
        BACKLINE_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        BACKLINE_MAX_CONNECTIONS=str(CAP),
        BACKLINE_KEEP_ALIVE_TIMEOUT="60",
    ) as server:
        yield server


def closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """Whether the server has closed the connection (waiting up to `wait` seconds to see)."""
    sock.settimeout(wait)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def healthz(sock: socket.socket) -> int:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    with sock.makefile("rb") as reader:
        return read_response(reader).status


@pytest.mark.slow
def test_the_connection_cap_refuses_one_more_and_frees_a_place_when_one_closes(
    server: Served,
) -> None:
    with ExitStack() as stack:
        held = [stack.enter_context(server.connect()) for _ in range(CAP)]
        assert [healthz(sock) for sock in held] == [200] * CAP

        with server.connect() as extra:
            extra.settimeout(GIVE_UP_AFTER)
            answer = b""
            for _ in range(100):
                chunk = extra.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"content-type: application/problem+json" in answer
        assert b"connection: close" in answer
        assert b'"code":"unavailable"' in answer

        assert [healthz(sock) for sock in held] == [200] * CAP  # the first ones hold
        held.pop().close()
        deadline = time.monotonic() + GIVE_UP_AFTER
        while True:  # the server sees the close a moment later
            with server.connect() as fresh:
                try:
                    if healthz(fresh) == 200:
                        break
                except (AssertionError, ConnectionError):  # refused before a status line
                    pass
            assert time.monotonic() < deadline, "no place was freed"
            time.sleep(0.1)


@pytest.mark.slow
def test_a_client_dripping_its_headers_is_cut_while_others_are_served(server: Served) -> None:
    with server.connect() as slow, httpx.Client(base_url=server.url, timeout=5) as normal:
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        cut = False
        for n in range(int(GIVE_UP_AFTER / 0.25)):
            try:
                slow.sendall(f"X-Drip-{n}: {'a' * 10}\r\n".encode())
            except ConnectionError:
                cut = True
                break
            assert normal.get("/healthz").status_code == 200
            if closed_by_peer(slow, 0.25):
                cut = True
                break
        assert cut, f"still open after {time.monotonic() - started:.1f} s"
        assert normal.get("/healthz").status_code == 200


@pytest.mark.slow
def test_a_connection_that_sends_nothing_is_closed(server: Served) -> None:
    with server.connect() as silent:
        assert closed_by_peer(silent, GIVE_UP_AFTER)
