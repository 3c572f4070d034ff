"""Settings: the configuration contract, aliases, and the production refusals."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from backline.app import create_app
from backline.config import ConfigError, Settings, mask_url

STRONG_KEY = "k" * 48
PRODUCTION: dict[str, Any] = {
    "env": "production",
    "secret_key": STRONG_KEY,
    "database_url": "postgresql://backline:pw@db.internal:5432/backline",
    "allowed_origins": "https://app.example.com",
    "public_url": "https://app.example.com",
    "email_backend": "resend",
    "resend_api_key": "re_live_abcdef",
    "storage_backend": "s3",
    "s3_bucket": "backline-audio",
    "encryption_keys": "k1:" + "A" * 43,
}


@pytest.fixture(autouse=True)
def in_empty_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_a_valid_production_configuration_has_no_problems() -> None:
    assert Settings(**PRODUCTION).problems() == []


@pytest.mark.parametrize(
    ("override", "variable", "wording"),
    [
        ({"secret_key": None}, "BACKLINE_SECRET_KEY", "missing"),
        ({"secret_key": "x" * 31}, "BACKLINE_SECRET_KEY", "too short"),
        ({"database_url": "sqlite:///var/prod.db"}, "BACKLINE_DATABASE_URL", "SQLite"),
        ({"database_url": ""}, "BACKLINE_DATABASE_URL", "SQLite"),
        ({"allowed_origins": ""}, "BACKLINE_ALLOWED_ORIGINS", "empty"),
        ({"allowed_origins": "*"}, "BACKLINE_ALLOWED_ORIGINS", "wildcard"),
        (
            {"allowed_origins": "https://a.com,https://*.b.com"},
            "BACKLINE_ALLOWED_ORIGINS",
            "wildcard",
        ),
        ({"email_backend": "console"}, "BACKLINE_EMAIL_BACKEND", "console"),
        ({"email_backend": "file"}, "BACKLINE_EMAIL_BACKEND", "file"),
        ({"storage_backend": "local"}, "BACKLINE_STORAGE_BACKEND", "local"),
        ({"dev_mailbox": True}, "BACKLINE_DEV_MAILBOX", "never"),
    ],
)
def test_production_refuses_each_misconfiguration_in_one_line(
    override: dict[str, Any], variable: str, wording: str
) -> None:
    settings = Settings(**{**PRODUCTION, **override})
    problems = settings.problems()
    assert len(problems) == 1
    assert problems[0].startswith(variable)
    assert wording in problems[0]
    assert "\n" not in problems[0]
    with pytest.raises(ConfigError) as refused:
        create_app(settings, configure_logs=False)
    assert refused.value.problems == problems


def test_a_secret_of_exactly_32_bytes_is_accepted() -> None:
    assert Settings(**{**PRODUCTION, "secret_key": "s" * 32}).problems() == []


def test_development_uses_embedded_defaults_without_problems(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.env == "development"
    assert settings.problems() == []
    assert settings.db_url == "sqlite+aiosqlite:///var/backline.db"
    notes = " | ".join(settings.describe_defaults())
    assert "SQLite" in notes
    assert "console" in notes
    assert settings.effective_log_format == "console"


def test_development_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = Settings(var_dir=tmp_path / "v").signing_key
    second = Settings(var_dir=tmp_path / "v").signing_key
    assert first == second
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "v" / "secret.key").stat().st_mode)
    assert mode == 0o600


def test_unprefixed_aliases_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h:5432/d")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("JWT_SECRET", "j" * 40)
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example/")
    monkeypatch.setenv("RESEND_API_KEY", "re_123456")
    settings = Settings()
    assert settings.db_url == "postgresql+asyncpg://u:p@h:5432/d"
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "j" * 40
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.resend_api_key is not None


def test_prefixed_names_win_over_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://alias/db")
    monkeypatch.setenv("BACKLINE_DATABASE_URL", "postgresql://prefixed/db")
    assert "prefixed" in Settings().db_url


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BACKLINE_LOG_LEVEL=debug\nBACKLINE_REQUEST_TIMEOUT=12.5\n")
    settings = Settings()
    assert settings.log_level == "DEBUG"
    assert settings.request_timeout == 12.5


def test_wrong_shapes_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(email_backend="pigeon")
    with pytest.raises(ValidationError):
        Settings(public_url="not a url")


def test_masked_settings_hide_every_secret() -> None:
    settings = Settings(**{**PRODUCTION, "smtp_password": "smtp-pass-123", "chat_api_key": "sk-9"})
    text = "\n".join(f"{k}={v}" for k, v in settings.masked().items())
    for secret in (STRONG_KEY, "re_live_abcdef", "smtp-pass-123", ":pw@"):
        assert secret not in text
    assert "BACKLINE_DATABASE_URL=postgresql://backline:***@db.internal:5432/backline" in text


def test_mask_url_keeps_urls_without_password() -> None:
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url("redis://:s3cret@host:6379") == "redis://:***@host:6379"


def test_backend_specific_settings_are_required_in_any_environment() -> None:
    assert Settings(email_backend="smtp").problems()[0].startswith("BACKLINE_SMTP_HOST")
    assert Settings(storage_backend="s3").problems()[0].startswith("BACKLINE_S3_BUCKET")


def test_libpq_and_prisma_style_urls_are_translated() -> None:
    settings = Settings(database_url="postgresql://u:p@h:5432/d?sslmode=require&schema=app")
    assert settings.db_url == "postgresql+asyncpg://u:p@h:5432/d?ssl=require"
    assert settings.db_search_path == "app"
    assert settings.problems() == []


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"database_url": "mysql://u:p@h/d"}, "BACKLINE_DATABASE_URL"),
        ({"database_url": "backline.db"}, "BACKLINE_DATABASE_URL"),
        ({"redis_url": "localhost:6379"}, "BACKLINE_REDIS_URL"),
        ({"secret_key": "short-dev-key"}, "BACKLINE_SECRET_KEY"),
        ({"otlp_endpoint": "collector:4318"}, "BACKLINE_OTLP_ENDPOINT"),
        ({"sentry_dsn": "https://sentry.example.com/1"}, "BACKLINE_SENTRY_DSN"),
    ],
)
def test_unusable_values_are_problems_in_every_environment(
    override: dict[str, Any], variable: str
) -> None:
    [problem] = Settings(**override).problems()
    assert problem.startswith(variable)


def test_blank_secrets_count_as_unset(tmp_path: Path) -> None:
    settings = Settings(secret_key="", redis_url=" ", var_dir=tmp_path)
    assert settings.secret_key is None
    assert settings.redis_url is None
    assert len(settings.signing_key) >= 32


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "app.example.com",
        "https://app.example.com/path",
        "ftp://x.example",
        "https://user@app.example.com",
    ],
)
def test_origins_must_be_exact_origins(origin: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not an origin"):
        Settings(allowed_origins=origin)


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"allowed_origins": "http://app.example.com"}, "BACKLINE_ALLOWED_ORIGINS"),
        ({"public_url": "http://app.example.com"}, "BACKLINE_PUBLIC_URL"),
        ({"public_url": "https://localhost:8443"}, "BACKLINE_PUBLIC_URL"),
    ],
)
def test_production_needs_https_origins_and_a_public_address(
    override: dict[str, Any], variable: str
) -> None:
    [problem] = Settings(**{**PRODUCTION, **override}).problems()
    assert problem.startswith(variable)


FIRST_KEY = "first-key-material".ljust(43, "A")  # 32 bytes in URL-safe base64
SECOND_KEY = "second-key-material".ljust(43, "B")


def test_secrets_in_urls_and_key_rings_are_known_to_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value-1")
    settings = Settings(
        database_url="postgresql://u@h/d?password=query-pw-1",
        s3_endpoint_url="https://ak:endpoint-pw-1@s3.example.com",
        chat_base_url="https://chat.example.com/v1?api_key=chat-key-1",
        encryption_keys=f"k1:{FIRST_KEY},k2:{SECOND_KEY}",
    )
    known = settings.secret_values()
    for secret in (
        "query-pw-1",
        "endpoint-pw-1",
        "chat-key-1",
        FIRST_KEY,
        SECOND_KEY,
        "aws-secret-value-1",
    ):
        assert secret in known
    shown = "\n".join(settings.masked().values())
    for secret in ("query-pw-1", "endpoint-pw-1", "chat-key-1", FIRST_KEY):
        assert secret not in shown


def test_concurrent_first_starts_agree_on_one_development_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def read_key(_: int) -> bytes:
        return Settings(var_dir=tmp_path / "shared").signing_key

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(read_key, range(32)))
    assert len(keys) == 1
    assert len(next(iter(keys))) >= 32
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["secret.key"]


def test_masked_settings_say_where_each_value_came_from() -> None:
    settings = Settings(**{**PRODUCTION, "metrics_token": "metrics-token-value-0123456789"})
    shown = settings.masked()
    assert shown["BACKLINE_METRICS_TOKEN"] == "******** (30 chars) (environment)"
    assert shown["BACKLINE_SECRET_KEY"] == "******** (48 chars) (environment)"
    assert shown["BACKLINE_OUTBOX_WORKER"] == "external (default for production)"
    assert shown["BACKLINE_LOG_FORMAT"] == "json (default for production)"
    assert shown["BACKLINE_ALLOWED_ORIGINS"] == "https://app.example.com (environment)"
    assert shown["BACKLINE_RATE_LIMIT_IPV6_PREFIX"] == "64 (default)"
    assert shown["BACKLINE_SMTP_HOST"] == "(unset)"
    assert "metrics-token-value" not in "\n".join(shown.values())


@pytest.mark.parametrize(
    ("env", "setting", "host", "served"),
    [
        ("development", None, "127.0.0.1", True),
        ("development", None, "::1", True),
        ("development", None, "localhost", True),
        ("development", None, "0.0.0.0", False),  # noqa: S104
        ("development", None, "192.0.2.10", False),
        ("development", None, "backline.internal", False),
        ("test", None, "127.0.0.1", False),
        ("development", False, "127.0.0.1", False),
        ("development", True, "0.0.0.0", True),  # noqa: S104 - asked for explicitly
        ("test", True, "127.0.0.1", True),
    ],
)
def test_the_dev_mailbox_is_on_by_default_only_in_development_on_loopback(
    env: str, setting: bool | None, host: str, served: bool
) -> None:
    assert Settings(env=env, dev_mailbox=setting).dev_mailbox_on(host) is served


def test_the_traces_endpoint_comes_from_backline_or_opentelemetry_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().traces_endpoint is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318/")
    assert Settings().traces_endpoint == "http://otel:4318/v1/traces"
    assert Settings().masked()["BACKLINE_OTLP_ENDPOINT"] == (
        "http://otel:4318/v1/traces (OTEL_EXPORTER_OTLP_* environment)"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4318/custom")
    assert Settings().traces_endpoint == "http://otel:4318/custom"
    assert (
        Settings(otlp_endpoint="http://mine:4318").traces_endpoint == "http://mine:4318/v1/traces"
    )
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert Settings(otlp_endpoint="http://mine:4318").traces_endpoint is None


def test_sentry_dsn_and_collector_headers_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=collector-key-123,x-team=ops")
    settings = Settings(sentry_dsn="https://dsnpublic999@sentry.example.com/7")
    assert not settings.problems()
    assert "dsnpublic999" not in settings.masked()["BACKLINE_SENTRY_DSN"]
    assert "(unset: no error reporting)" in Settings().masked()["BACKLINE_SENTRY_DSN"]
    secrets = settings.secret_values()
    assert "collector-key-123" in secrets
    assert "dsnpublic999" in secrets
