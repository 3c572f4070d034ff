"""Portal forms for the passkeys listed on the security page (`/account/security`): rename one,
remove one. Both are plain form posts, so they work without JavaScript, and call the same
service functions as `PATCH` and `DELETE /api/me/passkeys/{id}` (`passkeys.service.rename`,
`remove`: the name's check, one's own passkeys only, a required role's last factor kept, the
`passkey_removed` audit event); a refusal is shown on the page.

Adding a passkey needs the browser's WebAuthn API, so `static/passkeys.js` does it through
`/api/me/passkeys/options` and `POST /api/me/passkeys`, then reloads the page with
`?passkey=added`. Signing in with one (on `/login`) goes through `/api/auth/passkeys/*` alike,
and the second step of a sign-in with one (on the second-step page) through
`/api/auth/mfa/passkey/*`.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from backline.accounts.models import User
from backline.context import client_info
from backline.deps import SessionDep, SettingsDep
from backline.errors import ProblemError
from backline.passkeys import service
from backline.routing import router
from backline.web.security_pages import managing, security_view
from backline.web.viewer import to_sign_in

pages = router(public=True, include_in_schema=False)
MAX_NAME = 400  # the rule is 100 visible characters once trimmed; the rest is refused by it


def rename_field(passkey_id: uuid.UUID) -> str:
    """The name of a passkey's rename field, and the key of its error on the page."""
    return f"rename-{passkey_id}"


@pages.post("/account/security/passkeys/{passkey_id:uuid}/rename", response_class=HTMLResponse)
async def rename(
    passkey_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    found = await managing(request, session, settings)
    if isinstance(found, Response):
        return found
    viewer, form = found
    field = rename_field(passkey_id)
    try:
        row = await service.rename(
            session, user_id=viewer.user.id, passkey_id=passkey_id,
            name=form.get("name", "")[:MAX_NAME],
        )  # fmt: skip
    except ProblemError as exc:
        if exc.code == "invalid_passkey_name":
            return await security_view(
                session, settings, viewer, exc.status, errors={field: exc.detail}
            )
        return await security_view(session, settings, viewer, exc.status, error=exc.detail)
    notice = f"The passkey is renamed “{row.name}”."
    return await security_view(session, settings, viewer, notice=notice)


@pages.post("/account/security/passkeys/{passkey_id:uuid}/remove", response_class=HTMLResponse)
async def remove(
    passkey_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    found = await managing(request, session, settings)
    if isinstance(found, Response):
        return found
    viewer, _ = found
    user = await session.get(User, viewer.user.id)
    if user is None:
        return to_sign_in()
    try:
        row = await service.remove(
            session, settings=settings, user=user, passkey_id=passkey_id,
            client=client_info(request),
        )  # fmt: skip
    except ProblemError as exc:  # not theirs (404), or their role's last factor (409)
        return await security_view(session, settings, viewer, exc.status, error=exc.detail)
    notice = f"The passkey “{row.name}” is removed: it no longer signs you in."
    return await security_view(session, settings, viewer, notice=notice)
