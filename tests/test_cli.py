"""The `backline` command line: check-config, migrate, create-user, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from backline import migrate
from backline.cli import app
from tests.conftest import free_port

runner = CliRunner()
STRONG_KEY = "a-production-signing-key-of-enough-length-0123"


@pytest.fixture(autouse=True)
def workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKLINE_LOG_FORMAT", "json")
    return tmp_path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLINE_")}
    env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


def test_check_config_in_development_is_ok_and_masks_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKLINE_SMTP_PASSWORD", "smtp-secret-value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:db-secret-value@127.0.0.1/x")
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 0, result.output
    assert "BACKLINE_ENV=development" in result.stdout
    assert "BACKLINE_SMTP_PASSWORD=******** (17 chars)" in result.stdout
    assert "smtp-secret-value" not in result.output
    assert "db-secret-value" not in result.output
    assert "configuration OK for development" in result.stdout


def test_check_config_fails_where_production_would_not_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKLINE_ENV", "production")
    monkeypatch.setenv("BACKLINE_SECRET_KEY", "short")
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 1
    problems = result.stderr.strip().splitlines()
    assert any(line.startswith("backline: BACKLINE_SECRET_KEY is too short") for line in problems)
    assert any("BACKLINE_DATABASE_URL" in line for line in problems)
    assert "BACKLINE_ENV=production" in result.stdout
    assert "short" not in result.stdout.replace("too short", "")


def test_check_config_shows_the_default_in_place_of_each_unset_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BACKLINE_LOG_FORMAT")
    monkeypatch.setenv("BACKLINE_LOG_LEVEL", "warning")
    monkeypatch.setenv("BACKLINE_RATE_LIMITS", '{"login": "5/minute"}')
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 0, result.output
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert shown["BACKLINE_OUTBOX_WORKER"] == "inline (default for development)"
    assert shown["BACKLINE_LOG_FORMAT"] == "console (default for development)"
    assert shown["BACKLINE_LOG_LEVEL"] == "WARNING (environment)"
    assert shown["BACKLINE_MAX_SESSIONS"] == "50 (default)"
    assert shown["BACKLINE_DATABASE_URL"].startswith("sqlite+aiosqlite:///var/backline.db (")
    limits = shown["BACKLINE_RATE_LIMITS"]
    assert "login=5/minute," in limits
    assert "forgot_password=5/hour" in limits
    assert limits.endswith("(environment for login; default for the rest)")
    assert not any(
        value.startswith("(unset)")
        for value in (shown["BACKLINE_OUTBOX_WORKER"], shown["BACKLINE_LOG_FORMAT"], limits)
    )


def test_check_config_ends_a_refusal_with_one_summary_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BACKLINE_LOG_FORMAT")
    monkeypatch.setenv("BACKLINE_ENV", "production")
    monkeypatch.setenv("BACKLINE_METRICS_TOKEN", "a-metrics-token-long-enough-9")
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 1
    *problems, summary = result.stderr.strip().splitlines()
    assert summary == f"backline: configuration refused for production: {len(problems)} problems"
    assert len(problems) > 1
    assert "BACKLINE_OUTBOX_WORKER=external (default for production)" in result.stdout
    assert "BACKLINE_LOG_FORMAT=json (default for production)" in result.stdout
    assert "BACKLINE_METRICS_TOKEN=******** (29 chars) (environment)" in result.stdout
    assert "a-metrics-token-long-enough-9" not in result.output


def test_invalid_values_are_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLINE_EMAIL_BACKEND", "pigeon")
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("backline: BACKLINE_EMAIL_BACKEND is invalid")


def test_a_malformed_key_ring_is_one_line_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKLINE_ENCRYPTION_KEYS", "k1:too-short-key-material")
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("backline: BACKLINE_ENCRYPTION_KEYS is invalid")
    assert "key 'k1' is not 32 bytes" in line
    assert "too-short-key-material" not in result.output


def test_migrate_then_create_user_then_refuse_a_duplicate(workdir: Path) -> None:
    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert f"empty -> {migrate.head_revision()}" in migrated.stdout
    assert (workdir / "var" / "backline.db").exists()

    created = runner.invoke(
        app,
        ["create-user", "--email", "Boss@Example.com", "--role", "admin", "--password-stdin"],
        input="a very good passphrase\n",
    )
    assert created.exit_code == 0, created.output
    assert "created admin boss@example.com" in created.stdout
    assert "a very good passphrase" not in created.output

    again = runner.invoke(
        app,
        ["create-user", "--email", "boss@example.com", "--role", "staff", "--password-stdin"],
        input="another passphrase\n",
    )
    assert again.exit_code == 1
    assert "already exists" in again.stderr


def test_created_users_are_verified(workdir: Path) -> None:
    import asyncio

    from backline.accounts import service as accounts
    from backline.config import Settings
    from backline.db import create_engine, create_sessionmaker

    result = runner.invoke(
        app,
        ["create-user", "--email", "s@example.com", "--role", "staff", "--password-stdin"],
        input="staff passphrase\n",
    )
    assert result.exit_code == 0, result.output

    async def load() -> tuple[str, bool]:
        engine = create_engine(Settings())
        async with create_sessionmaker(engine)() as session:
            user = await accounts.get_by_email(session, email="s@example.com")
        await engine.dispose()
        assert user is not None
        return user.role, user.is_verified

    assert asyncio.run(load()) == ("staff", True)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--email", "x@example.com", "--password-stdin"], "short\n", "8 to 128"),
        (["--email", "not-an-email", "--password-stdin"], "long enough pw\n", "email"),
        (["--email", "x@example.com", "--role", "god", "--password-stdin"], "long enough\n", ""),
    ],
)
def test_create_user_refuses_bad_input(args: list[str], stdin: str, message: str) -> None:
    result = runner.invoke(app, ["create-user", *args], input=stdin)
    assert result.exit_code != 0
    assert message in result.output


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_migrates_sqlite_prints_the_url_and_answers(workdir: Path, workers: int) -> None:
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backline",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=workdir,
            env=clean_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if log_path.read_text().count("Application startup complete") >= workers:
                    break
                assert process.poll() is None, log_path.read_text()
                time.sleep(0.1)
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert response.status_code == 200
            assert response.json()["checks"]["database"] == "ok"
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)
    output = log_path.read_text()
    assert f"is running at http://127.0.0.1:{port}/" in output
    assert output.count("Application startup complete") == workers
    assert output.count("development_default") >= workers
    assert (workdir / "var" / "backline.db").exists()
    assert process.returncode == 0


@pytest.mark.slow
def test_serve_refuses_a_production_misconfiguration(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backline", "serve"],
        cwd=workdir,
        env=clean_env(
            BACKLINE_ENV="production",
            BACKLINE_SECRET_KEY=STRONG_KEY,
            BACKLINE_DATABASE_URL="postgresql://u:p@127.0.0.1:1/x",
            BACKLINE_ALLOWED_ORIGINS="https://app.example.com",
            BACKLINE_PUBLIC_URL="https://app.example.com",
            BACKLINE_EMAIL_BACKEND="resend",
            BACKLINE_RESEND_API_KEY="re_x",
            BACKLINE_ENCRYPTION_KEYS="k1:" + "A" * 43,
            BACKLINE_STORAGE_BACKEND="local",
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "backline: BACKLINE_STORAGE_BACKEND is local: production needs s3"
    )
    assert STRONG_KEY not in result.stderr + result.stdout


def test_worker_once_delivers_the_outbox_to_files(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from backline.config import Settings
    from backline.db import create_engine, create_sessionmaker
    from backline.email import service as outbox

    monkeypatch.setenv("BACKLINE_EMAIL_BACKEND", "file")
    assert runner.invoke(app, ["migrate"]).exit_code == 0

    async def queue() -> None:
        settings = Settings()
        engine = create_engine(settings)
        async with create_sessionmaker(engine)() as session, session.begin():
            for i in range(3):
                await outbox.enqueue(
                    session,
                    settings=settings,
                    template="signup_attempt",
                    to_address=f"w{i}@example.com",
                )
        await engine.dispose()

    asyncio.run(queue())
    result = runner.invoke(app, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "attempted 3 deliveries" in result.stderr
    assert len(list((workdir / "var" / "mail").glob("*.eml"))) == 3
    again = runner.invoke(app, ["worker", "--once"])
    assert "attempted 0 deliveries" in again.stderr
