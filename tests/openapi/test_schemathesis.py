"""Schemathesis (`st run --checks all`) over the served document, in every role: zero failures.

One `backline serve` answers four passes: signed out, and signed in (a bearer token from a real
login) as a user, an artist and staff. Operations that end the caller's session run last, in a
pass of their own with a fresh sign-in, so that they do not sign the main pass out. Rate limits
are raised through BACKLINE_RATE_LIMITS (the run makes thousands of requests from one address)
and access tokens live the longest allowed; the assistant answers from the stand-in provider.
The run is bounded: few examples per operation and a fixed seed (tests/openapi/schemathesis.toml,
which also lists, with reasons, where a valid request by the document is rightly refused).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backline.ratelimit.policies import DEFAULTS
from tests import served as served_module
from tests.chat.upstream import Upstream, serve
from tests.conftest import free_port
from tests.served import Served, create_user, served

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")
ENDS_SESSION = (
    "POST /api/auth/logout",
    "POST /api/auth/logout-all",
    "DELETE /api/auth/sessions/{session_id}",
    "DELETE /api/me",
)
ROLES = ("signed-out", "user", "artist", "staff")


@contextmanager
def chat_provider() -> Iterator[str]:
    """The stand-in chat provider, on a loop of its own in a thread; answers its URL."""
    ready = threading.Event()
    running: dict[str, Any] = {}

    async def main() -> None:
        upstream = Upstream()
        server, task = await serve(upstream, free_port())
        running.update(url=upstream.url, server=server)
        ready.set()
        await task

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the chat stand-in did not start"
    try:
        yield running["url"]
    finally:
        running["server"].should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, patient_start: None) -> Iterator[Served]:
    unlimited = json.dumps(dict.fromkeys(DEFAULTS, "1000000/minute"))
    with (
        chat_provider() as chat_url,
        served(
            tmp_path_factory.mktemp("schemathesis"),
            BACKLINE_ENV="test",
            BACKLINE_RATE_LIMITS=unlimited,
            BACKLINE_ACCESS_TOKEN_MINUTES="60",
            BACKLINE_CHAT_BASE_URL=chat_url,
            BACKLINE_CHAT_MODEL="test-model",
        ) as running,
    ):
        yield running


@pytest.fixture(autouse=True, scope="module")
def patient_start() -> Iterator[None]:
    """A first start migrates a fresh database: on a busy machine it takes longer than usual."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(served_module, "START_SECONDS", 120)
        yield


def schemathesis(server: Served, headers: dict[str, str], *selection: str) -> None:
    command = [str(ST), "--config-file", str(CONFIG), "--no-color", "run"]
    command += [f"{server.url}/openapi.json", "--checks", "all", *selection]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]


def sign_in(server: Served, role: str, name: str) -> dict[str, str]:
    if role == "signed-out":
        return {}
    return create_user(server, f"{name}-{role}@example.com", role=role)


@pytest.mark.parametrize("role", ROLES)
def test_the_document_holds_for_every_operation(server: Served, role: str) -> None:
    keep = [] if role == "signed-out" else [f"--exclude-name={name}" for name in ENDS_SESSION]
    schemathesis(server, sign_in(server, role, "main"), *keep)


@pytest.mark.parametrize("role", ROLES[1:])
def test_the_document_holds_for_operations_that_end_the_session(server: Served, role: str) -> None:
    only = [f"--include-name={name}" for name in ENDS_SESSION]
    schemathesis(server, sign_in(server, role, "ending"), *only)
