"""The route class every Backline router uses.

FastAPI hands a JSON endpoint a body of the wrong media type to validation, which answers a
confusing 422 about dictionaries. `JSONRoute` answers 415 `unsupported_media_type` instead,
before the body is read, for any endpoint that takes a JSON body.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute

from backline.errors import ProblemError


class UnsupportedMediaType(ProblemError):
    status, code = 415, "unsupported_media_type"


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


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or self._is_form_body():
            return handler

        async def checked(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if _has_body(request) and not is_json_media_type(content_type):
                raise UnsupportedMediaType(
                    "This endpoint takes application/json.", accepted=["application/json"]
                )
            return await handler(request)

        return checked

    def _is_form_body(self) -> bool:
        info = getattr(self.body_field, "field_info", None)
        return isinstance(info, params.Form)
