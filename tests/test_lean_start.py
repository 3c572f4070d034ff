"""What a process imports at start: heavy libraries only where they are used.

Each check runs in a fresh interpreter and reads its `sys.modules` afterwards, so it fails as
soon as a module-level import brings one back: the command line showing help or creating a
user, the worker, and the app starting with local storage and no assistant. How long the
commands take is measured by `python -m bench start`, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

# Imported only by the process that uses them: S3 storage, audio and artwork inspection, the
# assistant's provider, password-strength estimation.
HEAVY = {"aioboto3", "aiobotocore", "boto3", "botocore", "PIL", "mutagen", "openai", "zxcvbn"}
# The server and the application, which no other command needs.
SERVER = {"fastapi", "uvicorn", "jinja2", "backline.app", "backline.routing"}
# Settings, the database and logging, which showing help does not need.
WORK = {"sqlalchemy", "pydantic_settings", "structlog", "starlette", "backline.config"}
# Imported by the server at the first request that needs them: a passkey ceremony (WebAuthn's
# library), a sign-in through an OpenID provider (Authlib, joserfc), a TOTP enrolment's QR code
# (segno), a portal page (Jinja2).
FIRST_USE = {"webauthn", "authlib", "joserfc", "segno", "jinja2"}
# Neither creating a user nor the worker answers a request or limits a rate; with no key ring
# configured, nothing is encrypted either.
NO_REQUESTS = {"starlette", "limits", "cryptography"}

RUN_CLI = """
import json, sys
from backline.cli import app
try:
    app(args=sys.argv[2:], prog_name="backline")
except SystemExit as exit:
    status = exit.code
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "modules": sorted(sys.modules)}, out)
"""

START_APP = """
import asyncio, json, sys
from backline.app import create_app

async def main():
    app = create_app()
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
with open(sys.argv[1], "w") as out:
    json.dump({"status": 0, "modules": sorted(sys.modules)}, out)
"""

pytestmark = pytest.mark.slow


def imported(
    script: str, tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> tuple[int, set[str]]:
    """The exit status of `script` and every module it had imported when it ended."""
    report = tmp_path / "modules.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BACKLINE_")}
    environment.update(
        BACKLINE_ENV="test",
        BACKLINE_VAR_DIR=str(tmp_path / "var"),
        BACKLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'var' / 'backline.db'}",
        BACKLINE_LOG_FORMAT="json",
    )
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", script, str(report), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert report.exists(), done.stderr
    found = json.loads(report.read_text())
    return found["status"], set(found["modules"])


def loaded(modules: set[str], names: set[str]) -> set[str]:
    """Those of `names` (packages or modules) that are among `modules`."""
    return {name for name in names if any(m == name or m.startswith(f"{name}.") for m in modules)}


def test_help_imports_typer_and_nothing_of_the_application(tmp_path: Path) -> None:
    status, modules = imported(RUN_CLI, tmp_path, "--help")
    assert status == 0
    assert loaded(modules, HEAVY | SERVER | WORK) == set()


@pytest.mark.parametrize("command", [["keys", "--help"], ["create-user", "--help"]])
def test_a_command_s_help_imports_nothing_of_the_application(
    tmp_path: Path, command: list[str]
) -> None:
    status, modules = imported(RUN_CLI, tmp_path, *command)
    assert status == 0
    assert loaded(modules, HEAVY | SERVER | WORK) == set()


def test_create_user_imports_the_database_but_not_the_server(tmp_path: Path) -> None:
    status, modules = imported(
        RUN_CLI,
        tmp_path,
        "create-user",
        "--email",
        "lean@example.com",
        "--password-stdin",
        stdin="a lean start passphrase 7\n",
    )
    assert status == 0
    assert loaded(modules, {"sqlalchemy", "argon2"}) == {"sqlalchemy", "argon2"}
    # (The embedded database's migrations, which it runs first, use cryptography.)
    assert loaded(modules, HEAVY | SERVER | FIRST_USE | NO_REQUESTS - {"cryptography"}) == set()


def test_the_worker_with_local_storage_imports_no_s3_audio_or_image_library(
    tmp_path: Path,
) -> None:
    # The embedded database must exist first: the worker does not migrate it.
    status, _ = imported(RUN_CLI, tmp_path, "migrate")
    assert status == 0
    status, modules = imported(RUN_CLI, tmp_path, "worker", "--once")
    assert status == 0
    assert loaded(modules, HEAVY | SERVER) == set()


def test_the_app_with_local_storage_and_no_assistant_starts_without_them(tmp_path: Path) -> None:
    status, _ = imported(RUN_CLI, tmp_path, "migrate")
    assert status == 0
    status, modules = imported(START_APP, tmp_path)
    assert status == 0
    assert "fastapi" in modules
    assert loaded(modules, HEAVY) == set()


def test_the_app_starts_without_what_only_some_requests_need(tmp_path: Path) -> None:
    status, _ = imported(RUN_CLI, tmp_path, "migrate")
    assert status == 0
    status, modules = imported(START_APP, tmp_path)
    assert status == 0
    assert {"backline.passkeys.service", "backline.oidc.provider", "backline.web.render"} <= modules
    assert loaded(modules, FIRST_USE) == set()


IMPORT_ONLY = """
import importlib, json, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
with open(sys.argv[1], "w") as out:
    json.dump({"status": 0, "modules": sorted(sys.modules)}, out)
"""


def test_the_script_s_entry_imports_nothing_of_the_command_line(tmp_path: Path) -> None:
    """Every worker of `serve --workers N` is a spawned process, which imports the script
    again (as `__mp_main__`): the script's entry must not bring Typer and the commands."""
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["backline"] == "backline.__main__:run"
    status, modules = imported(IMPORT_ONLY, tmp_path, "backline.__main__")
    assert status == 0
    assert loaded(modules, {"typer", "backline.cli"} | WORK) == set()


def test_the_worker_imports_nothing_of_the_request_path(tmp_path: Path) -> None:
    status, _ = imported(RUN_CLI, tmp_path, "migrate")
    assert status == 0
    status, modules = imported(RUN_CLI, tmp_path, "worker", "--once")
    assert status == 0
    assert loaded(modules, FIRST_USE | NO_REQUESTS - {"starlette"}) == set()


def test_s3_storage_imports_its_libraries_when_built(tmp_path: Path) -> None:
    """The check above can see an import: building the S3 backend does bring aioboto3."""
    script = """
import json, sys
from backline.config import Settings
from backline.storage import create_storages

storages = create_storages(Settings(s3_bucket="lean-start", s3_endpoint_url="http://127.0.0.1:1"))
with open(sys.argv[1], "w") as out:
    json.dump({"status": storages.primary.name == "local", "modules": sorted(sys.modules)}, out)
"""
    status, modules = imported(script, tmp_path)
    assert status
    assert loaded(modules, {"aioboto3", "botocore"}) == {"aioboto3", "botocore"}
