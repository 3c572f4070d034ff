"""Portal forms for external sign-in on `/account`: link a provider, unlink an identity.

Linking posts a CSRF-checked form; the answer binds the browser (the `backline_oidc` cookie) and
sends it to the provider, whose callback links the identity and comes back to `/account`.
Unlinking is refused, with the reason on the page, when it would leave no way to sign in.

A browser coming back from a provider whose account needs a second step is shown the same
second step as after a right password (`security_pages.after_password`), registered here with
the provider's callback.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backline.accounts.models import User
from backline.context import client_info
from backline.deps import SettingsDep
from backline.errors import ProblemError
from backline.oidc import routes as oidc_routes
from backline.oidc import service
from backline.routing import router
from backline.web.security_pages import after_password
from backline.web.settings_pages import account_context, render_account
from backline.web.viewer import checked_form, optional_viewer, to_sign_in

pages = router(public=True, include_in_schema=False)
oidc_routes.show_second_step_with(after_password)


@pages.post("/account/oidc/{provider_name}/link", response_class=HTMLResponse)
async def link(provider_name: str, request: Request, settings: SettingsDep) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    await checked_form(request, viewer)
    begun = await oidc_routes.begin_attempt(
        request,
        settings=settings,
        name=provider_name,
        intent=service.Intent.LINK,
        user_id=viewer.user.id,
    )
    response = RedirectResponse(begun.authorization_url, status_code=303)
    oidc_routes.bind_browser(response, settings=settings, value=begun.browser)
    return response


@pages.post("/account/oidc/{identity_id}/unlink", response_class=HTMLResponse)
async def unlink(identity_id: uuid.UUID, request: Request) -> Response:
    viewer = await optional_viewer(request)
    if viewer is None:
        return to_sign_in()
    await checked_form(request, viewer)
    try:
        async with request.app.state.sessionmaker() as session, session.begin():
            user = await session.get(User, viewer.user.id)
            if user is None:
                return to_sign_in()
            await service.unlink(
                session, user=user, identity_id=identity_id, client=client_info(request)
            )
    except ProblemError as exc:
        context = await account_context(request, viewer)
        return render_account(viewer, exc.status, error=exc.detail, **context)
    return RedirectResponse("/account", status_code=303)
