"""Receiving a file: the declared digest, and a body spooled to disk as it streams.

A client may declare the file's SHA-256 as `Content-Digest: sha-256=:<base64>:` (RFC 9530) or
as `x-amz-checksum-sha256: <base64>`; a malformed declaration is 400, a mismatch 422, and in
either case nothing is kept.

The body is written to a private temporary file while it is hashed and counted, so memory stays
flat whatever the size and the file can be validated before anything reaches storage. The
report's 2-minute upload timeout is applied to idle time, between chunks, not to the whole
transfer: a 500 MiB file on a slow but steady link completes, a stalled one is cut after
BACKLINE_UPLOAD_TIMEOUT seconds without a byte (408 `upload_stalled`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
from starlette.requests import Request

from backline.errors import BadRequest, ProblemError
from backline.storage.base import Hasher

CHUNK = 1024 * 1024
_CONTENT_DIGEST = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):", re.IGNORECASE)


class UploadStalled(ProblemError):
    status, code = 408, "upload_stalled"


def declared_sha256(request: Request) -> str | None:
    """The client's declared SHA-256, hex; None when it declared none."""
    header = request.headers.get("content-digest")
    value = None
    if header is not None:
        match = _CONTENT_DIGEST.search(header)
        if match is None:
            raise BadRequest("Content-Digest must carry sha-256=:<base64>:.", code="invalid_digest")
        value = match.group(1)
    elif (amz := request.headers.get("x-amz-checksum-sha256")) is not None:
        value = amz.strip()
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("The declared digest is not base64.", code="invalid_digest") from None
    if len(raw) != 32:
        raise BadRequest("A SHA-256 digest is 32 bytes.", code="invalid_digest")
    return raw.hex()


async def spool(
    request: Request, *, directory: Path, max_size: int, idle_timeout: float
) -> tuple[Path, Hasher]:
    """Write the request body to a temporary file; the caller removes it."""
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    descriptor, name = await anyio.to_thread.run_sync(
        lambda: tempfile.mkstemp(dir=directory, prefix=".upload-")
    )
    path = Path(name)
    hasher = Hasher(max_size)
    body = request.stream().__aiter__()
    try:
        with os.fdopen(descriptor, "wb") as file:
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        chunk = await anext(body)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise UploadStalled(
                        f"No data arrived for {idle_timeout:g} seconds; the upload was cut."
                    ) from None
                if chunk:
                    hasher.update(chunk)
                    await anyio.to_thread.run_sync(file.write, chunk)
    except BaseException:
        await anyio.Path(path).unlink(missing_ok=True)
        raise
    return path, hasher


async def read_file(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        while chunk := await file.read(CHUNK):
            yield chunk
