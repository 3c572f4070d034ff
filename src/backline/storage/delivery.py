"""One stored object over HTTP, with byte ranges (RFC 9110 §14) and validators.

A browser's `<audio>` seeks by asking for a byte range and needs 206 to do so. Every answer has
`Accept-Ranges: bytes` and, when the object's SHA-256 is known, that digest as a strong `ETag`:

* `If-None-Match` naming the ETag (or `*`): 304, no body.
* One range, `bytes=a-b`, `bytes=a-` or `bytes=-n`: 206 with `Content-Range`, clamped to the
  object's end; one that starts at or past the end, or asks for the last 0 bytes: 416
  `range_not_satisfiable` with `Content-Range: bytes */<size>`.
* Several ranges, another unit or a malformed header: ignored, the whole object with 200, as
  RFC 9110 allows (players ask for one range; a multipart answer is not worth its cost).
* `If-Range` with anything but the current ETag (an older ETag, a date): the whole object.
* HEAD: the same status and headers, and the object is not read.

Starlette's FileResponse does ranges too, but opens its path following symbolic links, answers
a malformed range with 400 and knows no `If-None-Match`; the local backend's reads do not follow
links, and the object's SHA-256 is a better ETag than a file's modification time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from backline.errors import ProblemError
from backline.middleware.head import is_head

# One range-spec, nothing else; 19 digits keep every number below 2**63.
_ONE_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", re.IGNORECASE)

Reader = Callable[[int, int], AsyncIterator[bytes]]  # (start, length) -> chunks


class RangeNotSatisfiable(ProblemError):
    status, code = 416, "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"The range asked for is outside the object, which is {size} bytes long.",
            headers={"Content-Range": f"bytes */{size}"},
        )


def requested_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range a `Range` header asks for, as (first, last) inclusive and clamped to
    the object; None when the header is to be ignored. `RangeNotSatisfiable` when it asks for
    nothing the object has."""
    match = _ONE_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec: ignored with the rest of the header
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, min(int(last), size - 1) if last else size - 1


def _none_match(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison: `W/` is ignored."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def object_response(
    request: Request,
    read: Reader,
    *,
    size: int,
    media_type: str,
    etag: str | None,
    headers: Mapping[str, str],
) -> Response:
    """The answer to a GET (or HEAD) of an object of `size` bytes; `read(start, length)`
    streams the bytes chosen. `etag` is a quoted strong entity tag, or None if unknown."""
    answer = {"Accept-Ranges": "bytes", **headers}
    if etag is not None:
        answer["ETag"] = etag
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and _none_match(if_none_match, etag):
            return Response(status_code=304, headers=answer)

    status, start, length = 200, 0, size
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header is not None and (if_range is None or if_range.strip() == etag):
        try:
            span = requested_range(range_header, size)
        except RangeNotSatisfiable as exc:
            exc.headers.update(answer)
            raise
        if span is not None:
            status, start, length = 206, span[0], span[1] - span[0] + 1
            answer["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    answer["Content-Length"] = str(length)
    if is_head(request.scope):
        return Response(status_code=status, headers=answer, media_type=media_type)
    return StreamingResponse(
        read(start, length), status_code=status, headers=answer, media_type=media_type
    )
