"""The ASGI application: `create_app(settings)` builds it, `backline serve` runs it.

Start-up refuses a configuration with problems in production (see `backline.config`). The
lifespan opens what the process shares: the database engine, the Redis client when configured,
the outbound HTTP client, object storage, and (when BACKLINE_OUTBOX_WORKER is inline, the
development default) the background loops: the email outbox worker and the upload verifier;
and closes them on shutdown.

`Backline` is FastAPI with Backline's own ASGI middleware wrapped around the *whole* stack,
outside FastAPI's error middleware, so that even a 500 or a framework-made 413 carries the
request ID and security headers and is logged.

`create_app` runs in each server process (`backline serve --workers N` builds the app in every
worker), so each one sets up its own tracing and error reporting there when they are configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from backline import __version__, errorreports, routeindex, tracing
from backline.accounts import lookahead
from backline.accounts import routes as accounts_routes
from backline.accounts.revocation import Revocations
from backline.apidoc.build import install as install_openapi
from backline.artists import holdings as artists_holdings
from backline.artists import routes as artists_routes
from backline.audit.routes import staff as audit_router
from backline.chat import holdings as chat_holdings
from backline.chat.provider import Provider, missing_setting
from backline.chat.routes import chat_router
from backline.config import Settings
from backline.context import REQUEST_ID_HEADER
from backline.db import Engines, create_engine, create_read_sessionmaker, create_sessionmaker
from backline.email.backends import create_backend
from backline.email.routes import dev_router
from backline.email.worker import Worker
from backline.errors import install_error_handlers
from backline.factors import holdings as factors_holdings
from backline.factors import routes as factors_routes
from backline.httpclient import create_http_client
from backline.logging import configure_logging, get_logger
from backline.metrics.processes import forget_this_process
from backline.metrics.recording import count_pool_use
from backline.middleware.access import AccessLog
from backline.middleware.cookies import DeferredCookies
from backline.middleware.cors import Cors
from backline.middleware.deadline import Deadline
from backline.middleware.head import HeadAsGet
from backline.middleware.problems import ProblemGuard
from backline.middleware.ratelimit import RateLimitMiddleware
from backline.middleware.requestid import RequestContext
from backline.middleware.security import SecurityHeaders
from backline.oidc import holdings as oidc_holdings
from backline.oidc import routes as oidc_routes
from backline.ops.checks import build_checks
from backline.ops.routes import public_router as ops_router
from backline.passkeys import holdings as passkeys_holdings
from backline.passkeys import routes as passkeys_routes
from backline.ratelimit.limiter import RateLimiter
from backline.redis import create_redis
from backline.routing import JSONRoute
from backline.runtime import tune_for_serving
from backline.storage import create_storages
from backline.tax import holdings as tax_holdings
from backline.tax import routes as tax_routes
from backline.tracks import holdings as tracks_holdings
from backline.tracks import routes as tracks_routes
from backline.tracks import upload_routes
from backline.tracks.uploads import clear_dead_spools
from backline.tracks.verifier import Verifier
from backline.web.errors import install_page_errors
from backline.web.routes import pages as web_pages

log = get_logger(__name__)
# Each domain adds what it holds about a person to `accounts.holdings` as it is imported.
HOLDINGS = (
    tracks_holdings,
    artists_holdings,
    tax_holdings,
    chat_holdings,
    factors_holdings,
    oidc_holdings,
    passkeys_holdings,
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect")


class Backline(FastAPI):
    settings: Settings

    def build_middleware_stack(self) -> ASGIApp:
        settings = self.settings
        routeindex.install(self.router)
        app: ASGIApp = super().build_middleware_stack()
        app = HeadAsGet(app)
        app = Deadline(app, seconds=settings.request_timeout)
        app = RateLimitMiddleware(app, state=self.state, lookahead=lookahead.start)
        app = Cors(
            app,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Content-Digest",
                "X-CSRF-Token",
                REQUEST_ID_HEADER,
            ],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After", "RateLimit", "RateLimit-Policy"],
            max_age=600,
        )
        app = ProblemGuard(app)
        app = DeferredCookies(app)
        app = SecurityHeaders(app, hsts=settings.is_production, docs_paths=DOCS_PATHS)
        app = AccessLog(app)
        app = tracing.wrap_asgi(app)  # a server span per request when tracing is on
        return RequestContext(app)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings)
    count_pool_use(engine)
    redis = create_redis(settings)
    http = create_http_client(settings.http_timeout)
    if settings.storage_backend == "local":
        settings.effective_storage_dir.mkdir(parents=True, exist_ok=True)
    await clear_dead_spools(settings.var_dir)  # what a killed process could not remove
    app.state.engine = engine
    app.state.engines = Engines.of(engine)
    app.state.sessionmaker = create_sessionmaker(engine, settings=settings)
    app.state.read_sessionmaker = create_read_sessionmaker(app.state.engines, settings=settings)
    app.state.redis = redis
    app.state.http = http
    app.state.chat = Provider(settings, http) if missing_setting(settings) is None else None
    app.state.storages = create_storages(settings)
    app.state.readiness_checks = build_checks(engine, redis, app.state.storages.primary)
    app.state.ratelimiter = RateLimiter.from_settings(settings)
    app.state.revocations = Revocations(
        settings, redis, app.state.sessionmaker, pipeliner=app.state.ratelimiter.pipeliner
    )
    tune_for_serving()
    log.info(
        "started", env=settings.env, version=__version__, dev_mailbox=settings.serves_dev_mailbox
    )
    if not settings.is_production:
        for note in settings.describe_defaults():
            log.info("development_default", setting=note)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    if settings.effective_outbox_worker == "inline":
        worker = Worker(settings, app.state.sessionmaker, create_backend(settings, http))
        tasks.append(asyncio.create_task(worker.run(stop), name="outbox-worker"))
        app.state.verifier = Verifier(settings, app.state.sessionmaker, app.state.storages)
        tasks.append(asyncio.create_task(app.state.verifier.run(stop), name="upload-verifier"))
    try:
        yield
    finally:
        stop.set()
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), settings.email_timeout + 5)
        await http.aclose()
        await app.state.ratelimiter.aclose()
        await app.state.revocations.aclose()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
        forget_this_process()
        log.info("stopped")
        tracing.flush()
        errorreports.flush()


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Backline:
    settings = settings or Settings()
    settings.require_startable()
    if configure_logs:
        configure_logging(settings)
    tracing.configure_tracing(settings, "backline")
    docs: dict[str, Any] = {"docs_url": DOCS_PATHS[0], "redoc_url": None}
    app = Backline(
        title="Backline",
        version=__version__,
        summary="Artist platform back end: accounts, tracks, tax details, assistant.",
        lifespan=lifespan,
        max_body_size=settings.max_json_body,
        # Backline's own tracing (`tracing.wrap_asgi`) makes each request's span; FastAPI's
        # would be a second one, and costs a look at three OpenTelemetry globals per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        **docs,
    )
    app.settings = settings
    app.state.settings = settings
    app.router.route_class = JSONRoute
    install_error_handlers(app)
    install_page_errors(app)
    app.include_router(ops_router)
    for account_router in (
        accounts_routes.public,
        accounts_routes.signed_in,
        accounts_routes.me,
        accounts_routes.admin,
    ):
        app.include_router(account_router)
    app.include_router(oidc_routes.public)
    app.include_router(oidc_routes.signed_in)
    app.include_router(audit_router)
    app.include_router(web_pages)
    app.include_router(artists_routes.applicant_router)
    app.include_router(artists_routes.review_router)
    app.include_router(tracks_routes.tracks_router)
    app.include_router(tracks_routes.review_router)
    app.include_router(tracks_routes.media_router)
    app.include_router(upload_routes.uploads_router)
    app.include_router(upload_routes.signed_uploads_router)
    app.include_router(tax_routes.me_router)
    app.include_router(tax_routes.staff_router)
    app.include_router(chat_router)
    app.include_router(factors_routes.second_step)
    app.include_router(factors_routes.mine)
    app.include_router(passkeys_routes.me_router)
    app.include_router(passkeys_routes.auth_router)
    app.include_router(passkeys_routes.mfa_router)
    if settings.serves_dev_mailbox:
        app.include_router(dev_router)
    install_openapi(app)
    return app
