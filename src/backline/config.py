"""Settings: every knob Backline reads from the environment (and `.env`), validated once.

Names follow the configuration contract: each setting is `BACKLINE_<NAME>`, and a few also
answer to the unprefixed name the original app used (`DATABASE_URL`, `REDIS_URL`, `JWT_SECRET`,
`ALLOWED_ORIGINS`, `RESEND_API_KEY`).

Two layers of checking:

* Pydantic rejects values of the wrong shape (a port that is not a number, an unknown backend).
* `Settings.problems()` lists what would make a deployment unsafe or unable to work, each as one
  line naming the variable. In production any problem refuses start-up; in development the
  embedded defaults (SQLite, console email, local storage, a generated key kept in `var/`) are
  used instead and announced once by `describe_defaults()`.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Callable
from email.utils import parseaddr
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from backline.crypto import KeyRing

Environment = Literal["development", "test", "production"]
_DB_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")  # noqa: S104 - names, not a bind
MIN_SECRET_BYTES = 32
MIN_METRICS_TOKEN = 24
SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
ENCRYPTION_KEYS_FILE = "encryption.keys"
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
OTLP_HEADER_VARIABLES = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")


class OidcProvider(BaseModel):
    """One OpenID provider of BACKLINE_OIDC_PROVIDERS (its name is the object's key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, max_length=500)
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: SecretStr
    display_name: str = Field("", max_length=60)
    scopes: str = Field("openid email profile", max_length=300)


OIDC_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _env(name: str, *aliases: str) -> AliasChoices:
    return AliasChoices(f"BACKLINE_{name}", *aliases)


class ConfigError(Exception):
    """Start-up refused: each entry of `problems` is one line naming a variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BACKLINE_",
        env_file=".env",
        extra="ignore",
        validate_by_name=True,
        frozen=True,
    )

    env: Environment = "development"
    var_dir: Path = Path("var")

    database_url: str = Field("", validation_alias=_env("DATABASE_URL", "DATABASE_URL"))
    db_statement_timeout: float = Field(5.0, gt=0)
    db_pool_size: int = Field(20, ge=1)
    db_max_overflow: int = Field(0, ge=0)

    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL", "REDIS_URL"))
    redis_prefix: str = Field("backline", pattern=r"^[A-Za-z0-9._:-]{1,64}$")

    secret_key: SecretStr | None = Field(None, validation_alias=_env("SECRET_KEY", "JWT_SECRET"))
    public_url: str = "http://127.0.0.1:8000"
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("ALLOWED_ORIGINS", "ALLOWED_ORIGINS")
    )
    webauthn_rp_id: str | None = Field(
        None,
        pattern=r"^[a-z0-9.-]{1,253}$",
        description="passkeys' relying party ID (a domain); unset: the host of the public URL",
    )
    webauthn_origin: str | None = Field(
        None, description="the origin passkeys are used from; unset: that of the public URL"
    )

    email_backend: Literal["console", "file", "smtp", "resend"] = "console"
    email_file_dir: Path | None = None
    email_from: str = "Backline <no-reply@localhost>"
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_tls: bool = Field(False, description="implicit TLS (usually port 465)")
    smtp_ca_file: Path | None = Field(None, description="CA bundle to verify the SMTP server")
    resend_api_key: SecretStr | None = Field(
        None, validation_alias=_env("RESEND_API_KEY", "RESEND_API_KEY")
    )

    resend_base_url: str = "https://api.resend.com"
    outbox_worker: Literal["inline", "external"] | None = Field(
        None,
        description="the outbox worker and upload verifier run inline: inside `serve`; "
        "external: in `backline worker` processes",
    )
    email_retry_hours: float = Field(24.0, gt=0, description="how long delivery is retried")

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_request_checksum: Literal["when_required", "when_supported"] = "when_required"
    max_audio_bytes: int = Field(500 * 1024 * 1024, ge=1024)
    max_artwork_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_artwork_decoded_bytes: int = Field(
        6000 * 6000 * 4,
        ge=1400 * 1400 * 3,
        description="artwork whose pixels would take more than this decoded is refused",
    )
    artwork_check_concurrency: int = Field(
        2, ge=1, le=64, description="artwork images checked at once in one process"
    )

    encryption_keys: SecretStr | None = Field(
        None, description="key ring for data at rest: id:key,... (the first encrypts)"
    )
    tax_retention_years: int = Field(
        4, ge=1, le=100, description="years a superseded tax form is kept before purging"
    )

    chat_base_url: str | None = None
    chat_api_key: SecretStr | None = None
    chat_model: str | None = None
    chat_connect_timeout: float = Field(5.0, gt=0, description="chat provider connect, seconds")
    chat_first_byte_timeout: float = Field(
        30.0, gt=0, description="seconds until the provider's first answer chunk"
    )
    chat_idle_timeout: float = Field(30.0, gt=0, description="longest pause between chunks")
    chat_total_timeout: float = Field(300.0, gt=0, description="a whole streamed answer, seconds")
    chat_timeout: float = Field(30.0, gt=0, description="a whole unstreamed answer, seconds")
    chat_keepalive: float = Field(15.0, gt=0, description="keep-alive comment interval, seconds")
    chat_max_retries: int = Field(2, ge=0, le=10, description="provider retries before any byte")
    chat_max_message_chars: int = Field(4000, ge=1, le=100_000)
    chat_context_tokens: int = Field(
        6000, ge=500, description="estimated tokens of context sent with each message"
    )

    log_format: Literal["json", "console"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector base URL for traces over OTLP/HTTP "
        "(/v1/traces is added); unset: OTEL_EXPORTER_OTLP_ENDPOINT, else no tracing",
    )
    sentry_dsn: SecretStr | None = Field(
        None, description="Sentry DSN: errors are reported there, masked as the logs are"
    )

    access_token_minutes: int = Field(15, ge=1, le=60)
    refresh_token_days: int = Field(30, ge=1, le=365)
    session_idle_days: int = Field(14, ge=1, le=365, description="a session unused this long ends")
    lockout_threshold: int = Field(5, ge=2, le=100, description="failed passwords before a lock")
    mfa_required_roles: Annotated[list[Literal["user", "artist", "staff", "admin"]], NoDecode] = (
        Field(
            default_factory=list,
            description="roles that must sign in with a second factor, e.g. staff,admin",
        )
    )
    breached_password_check: bool = Field(
        False, description="refuse passwords found in Have I Been Pwned (k-anonymity range API)"
    )
    hibp_base_url: str = "https://api.pwnedpasswords.com"

    oidc_providers: dict[str, OidcProvider] = Field(
        default_factory=dict,
        description='JSON: provider name -> {"issuer", "client_id", "client_secret", '
        '"display_name"?, "scopes"?}; sign-in with each (see the README)',
    )
    oidc_create_accounts: bool = Field(
        True, description="a verified email from a provider that no account has makes one"
    )
    rate_limits: dict[str, str] = Field(
        default_factory=dict, description='JSON: policy name -> limits, e.g. {"login": "5/minute"}'
    )
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list, description="proxies whose X-Forwarded-For is believed"
    )
    rate_limit_ipv6_prefix: int = Field(
        64, ge=32, le=128, description="IPv6 clients are counted per network of this length"
    )
    metrics_token: SecretStr | None = Field(
        None, description="bearer token for /metrics (404 outside development without it)"
    )
    max_sessions: int = Field(
        50, ge=1, le=10_000, description="open sessions per account; the least recently used go"
    )
    artist_reapply_days: int = Field(
        30, ge=0, le=3650, description="days after a rejection before a new artist application"
    )

    request_timeout: float = Field(30.0, gt=0, description="whole-request deadline, seconds")
    http_timeout: float = Field(30.0, gt=0, description="outbound HTTP calls, seconds")
    upload_timeout: float = Field(120.0, gt=0, description="upload idle time, seconds")
    email_timeout: float = Field(10.0, gt=0, description="one email delivery, seconds")
    max_json_body: int = Field(1024 * 1024, ge=1024, description="bytes")
    header_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send a request's line and headers"
    )
    server: Literal["uvicorn", "granian"] = Field(
        "uvicorn", description="the HTTP server `backline serve` runs the app on"
    )
    keep_alive_timeout: int = Field(5, ge=1, description="seconds an idle connection is kept")
    max_connections: int = Field(1000, ge=1, description="open connections per server process")
    dev_mailbox: bool | None = Field(
        None,
        description="serve /dev/mailbox (never in production); unset: `serve` decides, "
        "on in development when it listens on loopback only",
    )

    @field_validator(
        "secret_key",
        "smtp_password",
        "resend_api_key",
        "encryption_keys",
        "chat_api_key",
        "metrics_token",
        "redis_url",
        "smtp_host",
        "s3_bucket",
        "s3_endpoint_url",
        "chat_base_url",
        "otlp_endpoint",
        "sentry_dsn",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if "*" in origin:
                continue  # reported by `problems()` with its own wording
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                raise ValueError(f"{origin!r} is not an origin: use scheme://host[:port]")
        return origins

    @field_validator("mfa_required_roles", mode="before")
    @classmethod
    def _split_roles(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [
                ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
            ]
        return value

    @field_validator("rate_limits")
    @classmethod
    def _known_policies(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:  # the defaults alone: nothing to check, nor `limits` to import for it
            return value
        from backline.ratelimit.policies import load

        load(value)  # raises a ValueError naming the policy or the limit
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _key_ring_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from backline.crypto import KeyRing, KeyRingError  # only with a ring to check

            try:
                KeyRing.parse(value.get_secret_value())
            except KeyRingError as exc:  # its message names the entry, never the key
                raise ValueError(str(exc)) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("email_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\0") or "@" not in parseaddr(value)[1]:
            raise ValueError("must be an address, optionally with a name: Name <addr@domain>")
        return value

    @field_validator("webauthn_origin")
    @classmethod
    def _bare_origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError("must be an origin: scheme and host, e.g. https://example.com")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    # ----------------------------------------------------------------- derived values

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @cached_property
    def db_url(self) -> str:
        """The async SQLAlchemy URL: the embedded SQLite file unless one is configured.

        `postgres://` and `postgresql://` URLs get the asyncpg driver, and the parameters
        other tools put in them are translated: libpq's `sslmode` becomes asyncpg's `ssl`,
        Prisma's `schema` becomes the search path (see `db_search_path`).
        """
        url = self.database_url.strip()
        if not url:
            return f"sqlite+aiosqlite:///{self.var_dir / 'backline.db'}"
        scheme, sep, rest = url.partition("://")
        driver = _DB_DRIVERS.get(scheme, scheme)
        if not driver.startswith("postgresql"):
            return f"{driver}{sep}{rest}"
        parts = urlsplit(f"{driver}{sep}{rest}")
        query = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "sslmode":
                query.append(("ssl", value))
            elif key != "schema":
                query.append((key, value))
        return urlunsplit(parts._replace(query=urlencode(query)))

    @property
    def db_search_path(self) -> str | None:
        """The schema named by a Prisma-style `?schema=` parameter, if any."""
        values = parse_qs(urlsplit(self.database_url.strip()).query).get("schema")
        return values[0] if values else None

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "console"

    @property
    def traces_endpoint(self) -> str | None:
        """Where spans go over OTLP/HTTP (the full `/v1/traces` URL), or None: no tracing.

        `BACKLINE_OTLP_ENDPOINT` first, then OpenTelemetry's own variables; `OTEL_SDK_DISABLED`
        turns tracing off whatever is set.
        """
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/traces"
        traces = os.environ.get(OTLP_ENDPOINT_VARIABLES[0], "").strip()
        if traces:
            return traces
        base = os.environ.get(OTLP_ENDPOINT_VARIABLES[1], "").strip()
        return base.rstrip("/") + "/v1/traces" if base else None

    @property
    def effective_email_file_dir(self) -> Path:
        return self.email_file_dir or self.var_dir / "mail"

    @property
    def effective_outbox_worker(self) -> Literal["inline", "external"]:
        if self.outbox_worker is not None:
            return self.outbox_worker
        return "inline" if self.env == "development" else "external"

    @property
    def email_sender_domain(self) -> str:
        """The domain of the From address, used in Message-IDs."""
        domain = parseaddr(self.email_from)[1].rpartition("@")[2]
        return domain or "localhost"

    @property
    def effective_storage_dir(self) -> Path:
        return self.storage_dir or self.var_dir / "storage"

    @property
    def passkey_rp_id(self) -> str:
        """The WebAuthn relying party ID: a domain, by default the public URL's host."""
        return self.webauthn_rp_id or (urlsplit(self.public_url).hostname or "localhost")

    @property
    def passkey_origin(self) -> str:
        """The origin a browser reports in a passkey ceremony, by default the public URL's."""
        if self.webauthn_origin:
            return self.webauthn_origin.rstrip("/")
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def cors_origins(self) -> list[str]:
        """Allowed browser origins; in development the public URL is always one of them."""
        origins = list(self.allowed_origins)
        if not self.is_production and self.public_url not in origins:
            origins.append(self.public_url)
        return origins

    @cached_property
    def signing_key(self) -> bytes:
        """The key that signs tokens.

        Production insists on a configured key (see `problems`). Elsewhere an unset key is
        generated once and kept in `var/secret.key`, so tokens survive a restart of the
        development server; tests get a fresh random key per process.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        if self.env == "test":
            return secrets.token_bytes(MIN_SECRET_BYTES)
        return _development_key(self.var_dir / SECRET_KEY_FILE)

    @cached_property
    def key_ring(self) -> KeyRing:
        """The key ring for data at rest.

        Production insists on a configured ring (see `problems`). Elsewhere an unset ring is
        generated once and kept in `var/encryption.keys`, so what the development server
        encrypted still reads after a restart.
        """
        from backline.crypto import KeyRing, generate_entry

        if self.encryption_keys is not None:
            return KeyRing.parse(self.encryption_keys.get_secret_value())
        path = self.var_dir / ENCRYPTION_KEYS_FILE
        return KeyRing.parse(_development_key(path, generate_entry).decode())

    def _urls(self) -> dict[str, str]:
        urls = {
            "BACKLINE_DATABASE_URL": self.database_url,
            "BACKLINE_REDIS_URL": self.redis_url or "",
            "BACKLINE_S3_ENDPOINT_URL": self.s3_endpoint_url or "",
            "BACKLINE_CHAT_BASE_URL": self.chat_base_url or "",
            "BACKLINE_RESEND_BASE_URL": self.resend_base_url,
            "BACKLINE_OTLP_ENDPOINT": self.otlp_endpoint or "",
        }
        return {name: url for name, url in urls.items() if url}

    def secret_values(self) -> list[str]:
        """Every configured secret as plain text, for log redaction."""
        values = [
            s.get_secret_value()
            for s in (
                self.secret_key,
                self.smtp_password,
                self.resend_api_key,
                self.encryption_keys,
                self.chat_api_key,
                self.metrics_token,
                self.sentry_dsn,
            )
            if s is not None
        ]
        if self.encryption_keys is not None:  # each key of the ring on its own, too (its
            # ID is not secret: logs name it when a value is under a key the ring lacks)
            for entry in re.split(r"[\s,;]+", self.encryption_keys.get_secret_value()):
                values.append(entry.partition(":")[2])
        for url in self._urls().values():
            values.extend(url_secrets(url))
        aws_secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if aws_secret:
            values.append(aws_secret)
        if self.sentry_dsn is not None:
            values.extend(url_secrets(self.sentry_dsn.get_secret_value()))
            values.append(urlsplit(self.sentry_dsn.get_secret_value()).username or "")
        for name in OTLP_HEADER_VARIABLES:  # collector credentials, `key=value,...`
            for pair in os.environ.get(name, "").split(","):
                values.append(pair.partition("=")[2].strip())
        return [v for v in values if len(v) >= 6]

    # ----------------------------------------------------------------- checks

    def problems(self) -> list[str]:
        """What is wrong with this configuration, one line per problem naming the variable."""
        found: list[str] = []
        if self.database_url.strip() and not self.db_url.startswith(tuple(_DB_DRIVERS.values())):
            found.append(
                "BACKLINE_DATABASE_URL must be postgresql://... or sqlite:///..., "
                f"not {urlsplit(self.database_url).scheme or 'a bare name'}"
            )
        if self.redis_url and urlsplit(self.redis_url).scheme not in _REDIS_SCHEMES:
            found.append("BACKLINE_REDIS_URL must be redis://host:port/db (or rediss://)")
        key_length = len(self.secret_key.get_secret_value().encode()) if self.secret_key else 0
        if 0 < key_length < MIN_SECRET_BYTES:
            found.append(
                f"BACKLINE_SECRET_KEY is too short: {key_length} bytes, "
                f"needs at least {MIN_SECRET_BYTES}"
            )
        found.extend(self._oidc_problems())
        if self.email_backend == "smtp" and not self.smtp_host:
            found.append("BACKLINE_SMTP_HOST is not set but BACKLINE_EMAIL_BACKEND is smtp")
        if self.email_backend == "resend" and self.resend_api_key is None:
            found.append("BACKLINE_RESEND_API_KEY is not set but BACKLINE_EMAIL_BACKEND is resend")
        if self.smtp_tls and self.smtp_starttls and self.email_backend == "smtp":
            found.append(
                "BACKLINE_SMTP_STARTTLS and BACKLINE_SMTP_TLS are both on: choose one "
                "(implicit TLS on port 465, STARTTLS on 587)"
            )
        if self.otlp_endpoint and urlsplit(self.otlp_endpoint).scheme not in ("http", "https"):
            found.append(
                "BACKLINE_OTLP_ENDPOINT must be the collector's http(s):// URL, "
                "e.g. http://collector:4318"
            )
        if self.sentry_dsn is not None:
            dsn = urlsplit(self.sentry_dsn.get_secret_value())
            if dsn.scheme not in ("http", "https") or not dsn.username or not dsn.path.strip("/"):
                found.append(
                    "BACKLINE_SENTRY_DSN must be a Sentry DSN: https://<key>@<host>/<project>"
                )
        if self.storage_backend == "s3" and not self.s3_bucket:
            found.append("BACKLINE_S3_BUCKET is not set but BACKLINE_STORAGE_BACKEND is s3")
        token_length = len(self.metrics_token.get_secret_value()) if self.metrics_token else 0
        if 0 < token_length < MIN_METRICS_TOKEN:
            # /metrics is not rate limited (scrapers poll it): its token must not be guessable.
            found.append(
                f"BACKLINE_METRICS_TOKEN is too short: {token_length} characters, "
                f"needs at least {MIN_METRICS_TOKEN}"
            )
        if not self.is_production:
            return found
        if self.secret_key is None:
            found.append(
                "BACKLINE_SECRET_KEY is missing: set at least 32 random bytes, for example "
                "the output of `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if self.encryption_keys is None:
            found.append(
                "BACKLINE_ENCRYPTION_KEYS is missing: set a key ring, for example the output "
                "of `backline keys generate`"
            )
        if self.is_sqlite:
            found.append(
                "BACKLINE_DATABASE_URL is SQLite (or unset): production needs PostgreSQL, "
                "e.g. postgresql://user:password@host:5432/backline"
            )
        if not self.allowed_origins:
            found.append(
                "BACKLINE_ALLOWED_ORIGINS is empty: list the browser origins, comma-separated"
            )
        elif any("*" in origin for origin in self.allowed_origins):
            found.append("BACKLINE_ALLOWED_ORIGINS contains a wildcard: list exact origins")
        elif any(not origin.startswith("https://") for origin in self.allowed_origins):
            found.append("BACKLINE_ALLOWED_ORIGINS must list https:// origins only")
        public = urlsplit(self.public_url)
        if public.scheme != "https" or public.hostname in _LOOPBACK:
            found.append(
                "BACKLINE_PUBLIC_URL must be the public https:// address (links in emails), "
                f"not {self.public_url}"
            )
        if self.email_backend in ("console", "file"):
            found.append(
                f"BACKLINE_EMAIL_BACKEND is {self.email_backend}: production needs smtp or resend"
            )
        if self.storage_backend == "local":
            found.append("BACKLINE_STORAGE_BACKEND is local: production needs s3")
        if self.dev_mailbox:
            found.append("BACKLINE_DEV_MAILBOX is true: production never serves the dev mailbox")
        return found

    @property
    def serves_dev_mailbox(self) -> bool:
        return bool(self.dev_mailbox) and not self.is_production

    def dev_mailbox_on(self, host: str) -> bool:
        """Whether a server bound to `host` serves /dev/mailbox: as set, else only in
        development and only on a loopback address (the mailbox shows everyone's links)."""
        if self.dev_mailbox is not None:
            return self.serves_dev_mailbox
        return self.env == "development" and _is_loopback(host)

    def _oidc_problems(self) -> list[str]:
        found: list[str] = []
        for name, provider in self.oidc_providers.items():
            where = f"BACKLINE_OIDC_PROVIDERS[{name!r}]"
            if not OIDC_PROVIDER_NAME.fullmatch(name):
                found.append(f"{where}: a name is 1-32 of a-z, 0-9 and '-', starting alphanumeric")
            issuer = urlsplit(provider.issuer)
            local = issuer.scheme == "http" and _is_loopback(issuer.hostname or "")
            if not issuer.hostname or (issuer.scheme != "https" and not local):
                found.append(f"{where}: issuer must be an https:// URL (http only on loopback)")
            elif local and self.env == "production":
                found.append(f"{where}: issuer must be https:// in production")
            if issuer.query or issuer.fragment:
                found.append(f"{where}: issuer may not have a query or fragment")
            if not provider.client_secret.get_secret_value():
                found.append(f"{where}: client_secret is empty")
            if "openid" not in provider.scopes.split():
                found.append(f"{where}: scopes must include openid")
        return found

    def require_startable(self) -> None:
        """Raise `ConfigError` when this configuration must not start."""
        if found := self.problems():
            raise ConfigError(found)

    def describe_defaults(self) -> list[str]:
        """The embedded defaults in use, said once at start outside production."""
        notes: list[str] = []
        if not self.database_url:
            notes.append(f"database: SQLite at {self.var_dir / 'backline.db'}")
        if self.secret_key is None:
            where = "random per process" if self.env == "test" else str(self.var_dir)
            notes.append(f"secret key: generated ({where})")
        if self.encryption_keys is None:
            notes.append(
                f"encryption key ring: generated, kept in {self.var_dir / ENCRYPTION_KEYS_FILE}"
            )
        if self.redis_url is None:
            notes.append("rate limits and revocation: in-process memory (this process only)")
        if self.email_backend == "console":
            listed = ", listed at /dev/mailbox" if self.serves_dev_mailbox else ""
            notes.append(f"email: printed to the console{listed}")
        if self.storage_backend == "local":
            notes.append(f"storage: local directory {self.effective_storage_dir}")
        return notes

    def _defaults_in_use(self) -> dict[str, tuple[Any, str]]:
        """What each unset setting stands for, and why: the value check-config shows."""
        for_env = f"default for {self.env}"
        key = {"test": "random per process", "production": "required"}.get(
            self.env, f"generated, kept in {self.var_dir / SECRET_KEY_FILE}"
        )
        ring = (
            "required"
            if self.is_production
            else (f"generated, kept in {self.var_dir / ENCRYPTION_KEYS_FILE}")
        )
        metrics = "served to anyone" if self.env == "development" else "not served (404)"
        return {
            "database_url": (self.db_url, "default"),
            "outbox_worker": (self.effective_outbox_worker, for_env),
            "log_format": (self.effective_log_format, for_env),
            "email_file_dir": (self.effective_email_file_dir, "default"),
            "storage_dir": (self.effective_storage_dir, "default"),
            "allowed_origins": (self.cors_origins, for_env),
            "secret_key": (f"(unset: {key})", for_env),
            "metrics_token": (f"(unset: /metrics {metrics})", for_env),
            "encryption_keys": (f"(unset: {ring})", for_env),
            "redis_url": ("(unset: rate limits and revocation in process memory)", "default"),
            "otlp_endpoint": (
                (self.traces_endpoint, "OTEL_EXPORTER_OTLP_* environment")
                if self.traces_endpoint
                else ("(unset: no tracing)", "default")
            ),
            "sentry_dsn": ("(unset: no error reporting)", "default"),
        }

    def masked(self) -> dict[str, str]:
        """The effective settings as text, each with where it came from, secrets masked.

        `(environment)` marks a value set in the environment (or `.env`); `(default)` a
        built-in one, `(default for production)` one that depends on BACKLINE_ENV. A setting
        that is unset and has no default in its place shows `(unset)`.
        """
        from backline.ratelimit.policies import load

        defaults = self._defaults_in_use()
        urls = self._urls()
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            variable = f"BACKLINE_{name.upper()}"
            value = getattr(self, name)
            source = "environment"
            if name not in self.model_fields_set:
                value, source = defaults.get(name, (value, "default"))
            if name == "rate_limits":
                value = ", ".join(f"{p.name}={p.limits}" for p in load(self.rate_limits).values())
                if self.rate_limits:
                    source = f"environment for {', '.join(self.rate_limits)}; default for the rest"
            if name == "oidc_providers":
                value = ", ".join(f"{n}={p.issuer}" for n, p in self.oidc_providers.items())
                value = value or "(none)"
            if isinstance(value, SecretStr):
                text = f"******** ({len(value.get_secret_value())} chars)"
            elif value is None:
                shown[variable] = "(unset)"
                continue
            elif isinstance(value, list):
                text = ",".join(map(str, value)) or "(empty)"
            elif variable in urls:
                text = mask_url(urls[variable])
            else:
                text = str(value)
            shown[variable] = f"{text} ({source})"
        return shown


_SECRET_PARAMS = frozenset({"password", "passwd", "secret", "token", "api_key", "apikey", "key"})


def url_secrets(url: str) -> list[str]:
    """The secrets inside a URL: its password and any password-like query parameter."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_PARAMS and v]
    return found


def mask_url(url: str) -> str:
    """`scheme://user:secret@host/db?password=x` -> `scheme://user:***@host/db?password=***`."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    if parts.query:
        query = [
            (k, "***" if k.lower() in _SECRET_PARAMS else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def _development_key(path: Path, make: Callable[[], str] | None = None) -> bytes:
    """Read the development key, creating it first if needed, safely among several processes.

    The key is written to a private temporary file and linked into place: `os.link` fails if
    the name exists, so concurrent first starts agree on one key and none reads a half-written
    file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        try:
            with os.fdopen(descriptor, "w") as file:  # mkstemp makes it 0600
                file.write(make() if make else secrets.token_urlsafe(48))
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            Path(temporary).unlink(missing_ok=True)
    return path.read_text().strip().encode()
