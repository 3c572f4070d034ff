"""Refusals on portal pages shown as a page, for people, rather than as problem JSON.

A `ProblemError` raised by a portal route (a staff page for a non-staff account, a forged form
post, a rate limit) is answered with the same status, headers and stable code, as an HTML page
when the browser asks for HTML; API clients and everything outside the portal keep
`application/problem+json`. A page's dependency finding nobody signed in (`SignInFirst`) is
answered with the redirect to the log-in page.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from backline.errors import PROBLEM_JSON, ProblemError, problem_of
from backline.web.render import page
from backline.web.viewer import SignInFirst, to_sign_in

TITLES = {403: "Not allowed here", 404: "Not found", 429: "Too many attempts"}


def _is_portal_page(request: Request) -> bool:
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    return getattr(endpoint, "__module__", "").startswith("backline.web.")


def _page_or_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    if _is_portal_page(request) and "text/html" in request.headers.get("accept", ""):
        return page(
            "error.html", exc.status, headers={"Cache-Control": "no-store", **(exc.headers or {})},
            title=TITLES.get(exc.status, "Something is not right"), error=exc.detail,
            code=exc.code,
        )  # fmt: skip
    return JSONResponse(
        problem_of(exc), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON
    )


def _sign_in(request: Request, exc: Exception) -> Response:
    return to_sign_in()


def install_page_errors(app: FastAPI) -> None:
    """Replace the app's `ProblemError` handler with one that knows portal pages, and send
    `SignInFirst` to the log-in page."""
    app.add_exception_handler(ProblemError, _page_or_problem)
    app.add_exception_handler(SignInFirst, _sign_in)
