"""Who is looking at a portal page, and whether a form post is really from the portal.

Pages use the browser's cookie session (see `accounts.cookies`). When its access cookie has
lapsed, the page renews the session from the refresh cookie and sends the new cookies with its
response (`accounts.renewal`): a person stays signed in while they use the portal, and a form
posted after a long while is handled rather than lost to a trip through the sign-in page. An
ended session is not renewed: its pages are shown as to anyone.

A form that changes anything carries the session's CSRF token in a hidden `csrf_token` field,
and its `Origin` must be an allowed origin: a form posted from another site is refused with 403
`csrf_failed`. Renewal keeps the session, so a form's token stays good across it. Forms used
before signing in (sign up, log in) have no session yet, so only their origin is checked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from backline.accounts.deps import check_csrf, check_origin
from backline.accounts.models import Role, User
from backline.accounts.renewal import browser_identity
from backline.accounts.tokens import csrf_token
from backline.errors import Forbidden
from backline.routing import text_form

SIGN_IN = "/login"


@dataclass(frozen=True)
class Viewer:
    user: User
    session_id: uuid.UUID
    csrf: str

    @property
    def is_staff(self) -> bool:
        return self.user.role in (Role.STAFF, Role.ADMIN)


async def optional_viewer(request: Request) -> Viewer | None:
    identity = await browser_identity(request)
    if identity is None:
        return None  # not signed in, or the session ended: the page is shown as to anyone
    async with request.app.state.sessionmaker() as session, session.begin():
        user = await session.get(User, identity.user_id)
        if user is None:
            return None
        session.expunge(user)
    key = request.app.state.settings.signing_key
    return Viewer(user, identity.session_id, csrf_token(key, identity.session_id))


async def checked_form(request: Request, found: Viewer) -> dict[str, str]:
    """The posted form's text fields, after its CSRF token and origin pass."""
    form = await text_form(request)
    token = form.get("csrf_token")
    check_csrf(request, found.session_id, token if isinstance(token, str) else "")
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def public_form(request: Request) -> dict[str, str]:
    """A form posted before signing in: only its origin is checked."""
    check_origin(request)
    form = await text_form(request)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def to_sign_in() -> RedirectResponse:
    return RedirectResponse(SIGN_IN, status_code=303)


class SignInFirst(Exception):
    """Raised by a page's dependency when nobody is signed in: answered with `to_sign_in()`
    (see `web.errors`)."""


async def staff_viewer(request: Request) -> Viewer:
    """The staff member or admin looking at a staff page. Nobody signed in is sent to sign in;
    anyone else gets 403 `forbidden_role`, as from `/api/admin/*`."""
    viewer = await optional_viewer(request)
    if viewer is None:
        raise SignInFirst
    if not viewer.is_staff:
        raise Forbidden("This needs the staff role.", code="forbidden_role")
    return viewer


StaffViewer = Annotated[Viewer, Depends(staff_viewer)]
