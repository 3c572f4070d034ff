"""The `backline` command line.

    backline serve [--host H] [--port P] [--workers N]   run the server
                   [--server uvicorn|granian]         on uvicorn (default) or Granian
    backline migrate [--revision REV]                    bring the schema up to date
    backline check-config                                show settings, exit 1 if unstartable
    backline create-user --email E --role R --password-stdin
    backline worker [--once]                             deliver email, verify direct uploads
    backline email preview [NAME] [--html]              render an email from its sample
    backline storage verify                              re-hash every object, report damage
    backline storage migrate --to s3 [--keep-source]     move every object to S3, resumably
    backline keys generate                               print a new key-ring entry
    backline keys rotate [--check]                       re-encrypt data at rest, newest key
    backline tax purge                                   delete tax forms past retention
    backline chat ping                                   ask the chat provider for one answer

Configuration problems are reported as one line per problem, naming the variable, with exit
status 2; nothing starts.

Showing help, or refusing a bad option, imports Typer and little else: each command imports
what it uses (the database, the services, the server) when it runs, and none imports the
application's routes unless it serves them. tests/test_lean_start.py holds the line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from backline.accounts.roles import Role
from backline.cli_keys import keys_app
from backline.commands import configure_logging, fail, load_settings
from backline.tax.cli import tax_app

if TYPE_CHECKING:
    from backline.config import Settings
    from backline.storage.migrate import Report as MigrateReport
    from backline.storage.verify import Report


class Server(StrEnum):
    """The HTTP servers `serve` can run the app on."""

    UVICORN = "uvicorn"
    GRANIAN = "granian"


app = typer.Typer(
    help="Backline: the artist platform back end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


async def _migrate(settings: Settings, revision: str = "head") -> tuple[str | None, str | None]:
    from backline import migrate
    from backline.db import create_engine

    engine = create_engine(settings)
    try:
        before = await migrate.current_revision(engine)
        await migrate.upgrade(engine, revision, storage_backend=settings.storage_backend)
        return before, await migrate.current_revision(engine)
    finally:
        await engine.dispose()


def _prepare_embedded_database(settings: Settings) -> None:
    """Outside production the embedded SQLite database migrates itself."""
    if settings.is_sqlite and not settings.is_production:
        asyncio.run(_migrate(settings))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    server: Annotated[
        Server | None,
        typer.Option(help="HTTP server to run the app on (default: BACKLINE_SERVER, uvicorn)."),
    ] = None,
) -> None:
    """Run the HTTP server on uvicorn or Granian. Outside production, SQLite is migrated first.

    Only uvicorn answers a connection past the cap with 503: see backline.serving_granian."""
    from backline.metrics.processes import shared_by_workers

    settings = load_settings()
    chosen = server.value if server is not None else settings.server
    configure_logging(settings)
    _prepare_embedded_database(settings)
    settings.signing_key  # noqa: B018 - a development key is made once, before the workers
    settings.key_ring  # noqa: B018 - and so is a development key ring
    # The app (built by each worker from the environment) learns whether to serve the dev
    # mailbox, which depends on the address listened on, through its own setting.
    mailbox = settings.dev_mailbox_on(host)
    os.environ["BACKLINE_DEV_MAILBOX"] = "true" if mailbox else "false"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    base = f"http://{shown}:{port}"
    if settings.effective_log_format == "json":  # standard error holds JSON lines only
        if mailbox:
            dev_mailbox: str | None = f"{base}/dev/mailbox"
        else:
            dev_mailbox = None if settings.is_production else "off"
        from backline.logging import get_logger

        get_logger("backline.cli").info(
            "serving", env=settings.env, url=f"{base}/", dev_mailbox=dev_mailbox
        )
    else:
        typer.echo(f"Backline ({settings.env}) is running at {base}/", err=True)
        if mailbox:
            typer.echo(f"Dev mailbox: {base}/dev/mailbox", err=True)
        elif not settings.is_production:
            typer.echo("Dev mailbox: off (not on loopback only, or BACKLINE_DEV_MAILBOX)", err=True)
    with shared_by_workers(workers):  # the workers' metrics, summed at each scrape
        if chosen == "granian":
            from backline import serving_granian

            serving_granian.run(settings, host=host, port=port, workers=workers)
        else:
            _run_uvicorn(settings, host=host, port=port, workers=workers)


def _run_uvicorn(settings: Settings, *, host: str, port: int, workers: int) -> None:
    import uvicorn

    from backline.serving import GuardedHttpToolsProtocol

    uvicorn.run(
        "backline.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=GuardedHttpToolsProtocol,
        timeout_keep_alive=settings.keep_alive_timeout,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # A worker answers the parent's health pings only once it has imported the app,
        # which on a busy machine takes longer than uvicorn's 5 s: it would be killed as
        # hung, again and again.
        timeout_worker_healthcheck=30,
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations up to REVISION (default: the newest)."""
    settings = load_settings(startable=False)
    configure_logging(settings)
    before, after = asyncio.run(_migrate(settings, revision))
    typer.echo(f"database schema: {before or 'empty'} -> {after or 'empty'}")


@app.command("check-config")
def check_config() -> None:
    """Print the effective settings (secrets masked); exit 1 where start-up would fail."""
    settings = load_settings(startable=False)
    for name, value in settings.masked().items():
        typer.echo(f"{name}={value}")
    problems = settings.problems()
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        fail([*problems, f"configuration refused for {settings.env}: {count}"], status=1)
    typer.echo(f"configuration OK for {settings.env}")


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="The new user's email address.")],
    role: Annotated[Role, typer.Option(help="The user's role.")] = Role.USER,
    display_name: Annotated[str | None, typer.Option(help="Defaults to the email's name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user whose email address counts as verified."""
    from backline.accounts import service as accounts
    from backline.db import create_engine, create_sessionmaker
    from backline.errors import ProblemError

    settings = load_settings(startable=False)
    configure_logging(settings)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        fail(["pass --password-stdin to read the password from standard input"])
    name = display_name or email.partition("@")[0]
    _prepare_embedded_database(settings)

    async def run() -> str:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                user = await accounts.create(
                    session,
                    email=email,
                    password=password,
                    display_name=name,
                    role=role,
                    verified=True,
                )
                return f"created {user.role} {user.email} ({user.id})"
        finally:
            await engine.dispose()

    try:
        typer.echo(asyncio.run(run()))
    except ProblemError as exc:
        fail([exc.detail], status=1)


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Deliver what is due, then exit.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=500, help="Messages per round.")] = 20,
) -> None:
    """Deliver queued email and verify direct uploads until stopped (SIGINT/SIGTERM finish
    the work in hand)."""
    from backline import errorreports, tracing

    settings = load_settings()
    configure_logging(settings)
    tracing.configure_tracing(settings, "backline-worker")
    try:
        asyncio.run(_run_worker(settings, once=once, batch_size=batch_size))
    finally:
        tracing.flush()
        errorreports.flush()


async def _run_worker(settings: Settings, *, once: bool, batch_size: int) -> None:
    from backline.db import create_engine, create_sessionmaker
    from backline.email.backends import create_backend
    from backline.email.worker import Worker
    from backline.httpclient import create_http_client
    from backline.storage import create_storages
    from backline.tracks.uploads import clear_dead_spools
    from backline.tracks.verifier import Verifier

    await clear_dead_spools(settings.var_dir)  # what a killed process could not remove
    engine = create_engine(settings)
    http = create_http_client(settings.http_timeout)
    sessionmaker = create_sessionmaker(engine)
    outbox = Worker(settings, sessionmaker, create_backend(settings, http), batch_size=batch_size)
    verifier = Verifier(settings, sessionmaker, create_storages(settings))
    try:
        if once:
            attempted = await outbox.drain()
            verified = await verifier.drain()
            typer.echo(f"attempted {attempted} deliveries, verified {verified} uploads", err=True)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await asyncio.gather(outbox.run(stop), verifier.run(stop))
    finally:
        await http.aclose()
        await engine.dispose()


email_app = typer.Typer(help="Email templates and delivery.", no_args_is_help=True)
app.add_typer(email_app, name="email")


@email_app.command("preview")
def email_preview(
    name: Annotated[str | None, typer.Argument(help="Template name; none lists them.")] = None,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part.")] = False,
) -> None:
    """Render an email from its sample data (subject, then the text or HTML part)."""
    from backline.email.templates import CATALOGUE, UnknownTemplate, render_sample

    if name is None:
        for known in CATALOGUE:
            typer.echo(known)
        return
    settings = load_settings(startable=False)
    try:
        rendered = render_sample(name, public_url=settings.public_url)
    except UnknownTemplate:
        fail([f"no email named {name!r}; one of: {', '.join(CATALOGUE)}"], status=1)
    typer.echo(f"Subject: {rendered.subject}\n")
    typer.echo(rendered.html if html else rendered.text)


storage_app = typer.Typer(help="Object storage.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


@storage_app.command("verify")
def storage_verify() -> None:
    """Re-hash every stored object against its recorded SHA-256; exit 1 on any damage."""
    settings = load_settings(startable=False)
    configure_logging(settings)
    report = asyncio.run(_verify_storage(settings))
    for key in report.missing:
        typer.echo(f"missing   {key}", err=True)
    for key in report.mismatched:
        typer.echo(f"mismatch  {key}", err=True)
    typer.echo(
        f"checked {report.checked} objects: {len(report.missing)} missing, "
        f"{len(report.mismatched)} mismatched"
    )
    if not report.ok:
        raise typer.Exit(1)


async def _verify_storage(settings: Settings) -> Report:
    from backline.db import create_engine, create_sessionmaker
    from backline.storage import create_storages
    from backline.storage.verify import recorded, verify

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            objects = await recorded(session)
        with typer.progressbar(length=len(objects), label="Verifying", file=sys.stderr) as bar:
            return await verify(create_storages(settings), objects, progress=lambda: bar.update(1))
    finally:
        await engine.dispose()


@storage_app.command("migrate")
def storage_migrate(
    to: Annotated[str, typer.Option("--to", help="The backend to move every object to: s3.")],
    keep_source: Annotated[
        bool, typer.Option("--keep-source", help="Leave each source copy in place.")
    ] = False,
) -> None:
    """Copy every object to another backend, verify the copy, switch its row, then remove the
    source copy. Resumable and idempotent: run it again after an interruption."""
    settings = load_settings()
    configure_logging(settings)
    if to != "s3":
        fail(["--to must be s3 (objects move from the local directory to S3)"])
    if not settings.s3_bucket:
        fail(["BACKLINE_S3_BUCKET must be set to migrate to s3"])
    report = asyncio.run(_migrate_storage(settings, to, keep_source=keep_source))
    for key in report.missing:
        typer.echo(f"missing   {key}", err=True)
    for key in report.damaged:
        typer.echo(f"damaged   {key}", err=True)
    typer.echo(
        f"moved {report.moved} objects to {to}: {len(report.missing)} missing, "
        f"{len(report.damaged)} damaged, {len(report.changed)} changed meanwhile"
    )
    if settings.storage_backend != to:
        typer.echo(
            f"new objects still go to {settings.storage_backend}: set BACKLINE_STORAGE_BACKEND={to}"
        )
    if not report.ok:
        raise typer.Exit(1)


async def _migrate_storage(settings: Settings, to: str, *, keep_source: bool) -> MigrateReport:
    from backline.db import create_engine, create_sessionmaker
    from backline.storage import create_storages
    from backline.storage.migrate import migrate, pending

    engine = create_engine(settings)
    storages = create_storages(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            items = await pending(session, target=to, primary=storages.primary.name)
        with typer.progressbar(length=len(items), label="Migrating", file=sys.stderr) as bar:
            return await migrate(
                sessionmaker,
                storages,
                items,
                target=to,
                keep_source=keep_source,
                progress=lambda: bar.update(1),
            )
    finally:
        await engine.dispose()


app.add_typer(keys_app, name="keys")
app.add_typer(tax_app, name="tax")
chat_app = typer.Typer(help="The assistant's chat provider.", no_args_is_help=True)
app.add_typer(chat_app, name="chat")


@chat_app.command("ping")
def chat_ping() -> None:
    """Call the configured chat provider once; exit 1 unless it answers."""
    from backline.chat.ping import ping

    settings = load_settings()
    configure_logging(settings)
    answered, line = asyncio.run(ping(settings))
    if not answered:
        fail([line], status=1)
    typer.echo(line)


def main() -> None:
    app()
