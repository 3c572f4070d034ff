"""Routers and the route class every Backline router uses: build routers with `router()`.

`JSONRoute` tightens FastAPI's handling of JSON bodies:

* a body of another media type is 415 `unsupported_media_type`, before it is read, instead of
  a confusing 422 about dictionaries;
* a signed-in route checks the sign-in first (`admit`): 401 comes before any answer about the
  body (400 malformed JSON, 413, 415, 422), as clients expect;
* a NUL character in a JSON string, a form field, the query string or the path is 422
  `nul_character`: no text has a use for one, and PostgreSQL cannot store or compare it (it
  would surface as a 500).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import APIRouter, Request, Response, params
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from backline.errors import BadRequest, ProblemError, Unprocessable


class UnsupportedMediaType(ProblemError):
    status, code = 415, "unsupported_media_type"


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


async def _refuse_nul(request: Request) -> None:
    body = await request.body()  # cached: FastAPI's handler reads the same bytes
    if b"\\u0000" not in body and b"\x00" not in body:
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # malformed: FastAPI's own parsing reports it
    if _holds_nul(parsed):
        raise Unprocessable("Text fields may not contain NUL characters.", code="nul_character")


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "transfer-encoding" in request.headers


def _refuse_nul_in_url(request: Request) -> None:
    # The scope's own path and query, as `request.url` would show them, without building it.
    scope = request.scope
    path: str = scope.get("root_path", "") + scope["path"]
    query: bytes = scope.get("query_string", b"")
    if "\x00" in path or b"%00" in query or b"\x00" in query:
        raise Unprocessable("The address may not contain NUL characters.", code="nul_character")


async def text_form(request: Request) -> FormData:
    """The posted form, parsed once (later `request.form()` calls get the same), of text fields
    only: 400 `invalid_form` for a form that cannot be read, a file part included.

    No form route takes a file (tracks' uploads have a streaming parser of their own), and a
    file part refused as it is parsed has its temporary file closed: one whose body ends
    inside it is otherwise left open by Starlette, for the garbage collector."""
    try:
        return await request.form(max_files=0)
    except HTTPException as exc:  # Starlette's answer to a multipart body it cannot parse
        raise BadRequest(
            "The form could not be read: send text fields only, whole.", code="invalid_form"
        ) from exc


async def _refuse_nul_in_form(request: Request) -> None:
    form = await text_form(request)
    if any("\x00" in value for value in form.values() if isinstance(value, str)):
        raise Unprocessable("Form fields may not contain NUL characters.", code="nul_character")


class JSONRoute(APIRoute):
    signed_in = False  # whether `admit` checks a sign-in (the document's security says so)

    async def admit(self, request: Request) -> None:
        """Checks made before anything of the request is read; a signed-in route's sign-in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:

            async def url_checked(request: Request) -> Response:
                await self.admit(request)
                _refuse_nul_in_url(request)
                try:
                    return await handler(request)
                finally:
                    # A form the route parsed itself (a page's `request.form()`) holds its file
                    # parts in temporary files: closed here, not left to the garbage collector.
                    await request.close()

            return url_checked
        if self._is_form_body():

            async def form_checked(request: Request) -> Response:
                await self.admit(request)
                _refuse_nul_in_url(request)
                try:
                    await _refuse_nul_in_form(request)
                    return await handler(request)
                finally:
                    await request.close()  # the form parsed above, if the route did not close it

            return form_checked

        async def checked(request: Request) -> Response:
            await self.admit(request)
            _refuse_nul_in_url(request)
            content_type = request.headers.get("content-type")
            if _has_body(request):
                if not is_json_media_type(content_type):
                    raise UnsupportedMediaType(
                        "This endpoint takes application/json.", accepted=["application/json"]
                    )
                await _refuse_nul(request)
            return await handler(request)

        return checked

    def _is_form_body(self) -> bool:
        info = getattr(self.body_field, "field_info", None)
        return isinstance(info, params.Form)


def router(*, public: bool = False, **kwargs: Any) -> APIRouter:
    """An `APIRouter` of `JSONRoute`s; every Backline router is made here.

    Its routes require a signed-in user unless the router is made with `public=True`: a
    public route is the visible exception.
    """
    if public:
        kwargs.setdefault("route_class", JSONRoute)
    else:
        from fastapi import Depends

        from backline.accounts.deps import SignedInRoute, identify

        kwargs.setdefault("route_class", SignedInRoute)
        kwargs["dependencies"] = [Depends(identify), *kwargs.get("dependencies", [])]
    return APIRouter(**kwargs)
