"""`backline serve --server granian`: the application on Granian (an HTTP server written in Rust,
on hyper) instead of uvicorn. The app, its lifespan, its middleware, its access log and its
metrics are the same; what the server itself does maps onto Granian's settings like this:

* **Interface**: ASGI with the lifespan (`backline.app:create_app`, built in each worker),
  HTTP/1.1 only (as uvicorn serves it: no cleartext HTTP/2), no WebSockets (Backline has none).
* **Header timeout**: hyper's HTTP/1 header read timeout. It runs from the connection's opening
  and, on a kept-alive connection, from the end of each response to the end of the next
  request's headers: hyper has no separate idle timeout, so this one is also the keep-alive
  timeout. It is set to the smaller of `BACKLINE_HEADER_TIMEOUT` and
  `BACKLINE_KEEP_ALIVE_TIMEOUT`, so that neither promise is exceeded; at the defaults (10 and
  5 s) a client has 5 s, not 10, to send its headers after an idle wait.
* **Connection cap**: Granian's backpressure: each worker holds at most
  `BACKLINE_MAX_CONNECTIONS` connections, and accepts the next only when one closes. A further
  client waits in the kernel's listen queue (backlog 2048, uvicorn's) instead of being
  answered 503 with `Connection: close`: Granian offers no hook to answer it, so that promise
  of `backline.serving` does not hold here, and `backline_connections_refused_total` stays 0.
* **Graceful shutdown**: SIGINT or SIGTERM to `serve` stops the workers accepting; each
  finishes the requests in hand, then runs the lifespan's shutdown. A worker still busy after
  `GRACEFUL_SECONDS` (uvicorn's 10 s for requests, plus the lifespan's own bound) is killed.
* **Workers**: `--workers N` processes (one at least: Granian serves from a worker process
  even with one), started with `spawn` (as uvicorn's are), so that each imports
  prometheus-client with the shared metrics directory set (`backline.metrics.processes`); with
  more than one, a worker that dies is started again, as uvicorn does. A worker dies with the
  `serve` process (Linux's parent-death signal): a `serve` killed with SIGKILL leaves no worker
  behind still holding the port, as the single process of uvicorn's one worker would not.
* **Logging**: Granian's own lines (start, stop, worker respawns) go through Backline's pipeline
  at `BACKLINE_LOG_LEVEL`; Granian's access log is off (the app writes its own).
* **Server header**: Granian adds `server: granian` to every response, and has no setting to
  leave it out (uvicorn's is turned off).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import MPServer

from backline.config import Settings

if TYPE_CHECKING:
    from backline.app import Backline

TARGET = "backline.app:create_app"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Requests in hand get uvicorn's 10 s; the lifespan's shutdown may then wait for the outbox
# worker's delivery in hand (its own bound: BACKLINE_EMAIL_TIMEOUT + 5 s).
REQUESTS_GRACE_SECONDS = 10
BACKLOG = 2048  # uvicorn's default


def header_read_timeout_ms(settings: Settings) -> int:
    """hyper's one timeout, covering both the header timeout and the keep-alive idle wait."""
    seconds = min(settings.header_timeout, float(settings.keep_alive_timeout))
    return max(1, round(seconds * 1000))


def graceful_seconds(settings: Settings) -> int:
    return REQUESTS_GRACE_SECONDS + round(settings.email_timeout) + 5


def _log_config() -> dict[str, Any]:
    """Granian's loggers hand their records to the root logger, where Backline's handler is;
    incremental, so that the handler already configured in this process stays as it is."""
    return {
        "version": 1,
        "incremental": True,
        "formatters": {},
        "handlers": {},
        "loggers": {
            "_granian": {"propagate": True},
            "granian.access": {"propagate": True},
        },
    }


def _die_with_parent() -> None:
    """Have the kernel SIGKILL this worker when the process that started it dies."""
    parent = multiprocessing.parent_process()
    if sys.platform != "linux" or parent is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent.pid:  # it died before the signal was asked for
        os.kill(os.getpid(), signal.SIGKILL)


def load_app(target: str) -> Backline:
    """Granian's target loader, run in each worker before it serves: `target` is `TARGET`."""
    _die_with_parent()
    from backline.app import create_app

    return create_app()


def build(settings: Settings, *, host: str, port: int, workers: int) -> MPServer:
    # Forked workers would inherit this process's imports, prometheus-client's among them,
    # imported before the shared metrics directory was named; spawned ones start afresh.
    multiprocessing.set_start_method("spawn", force=True)
    return MPServer(
        TARGET,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=header_read_timeout_ms(settings)),
        log_enabled=True,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=_log_config(),
        log_access=False,
        respawn_failed_workers=workers > 1,
        workers_kill_timeout=graceful_seconds(settings),
    )


def run(settings: Settings, *, host: str, port: int, workers: int) -> None:
    build(settings, host=host, port=port, workers=workers).serve(target_loader=load_app)
