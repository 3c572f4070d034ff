"""Receiving a file: the declared digest, and a body spooled to disk as it streams.

Two shapes of body: the raw file (`PUT`, any API client), or a browser's
`multipart/form-data` form (`POST`) with one file field `file` and an optional `sha256` field
(hex), parsed as it streams by python-multipart, never held in memory.

A client may declare the file's SHA-256 as `Content-Digest: sha-256=:<base64>:` (RFC 9530) or
as `x-amz-checksum-sha256: <base64>`; a malformed declaration is 400, a mismatch 422, and in
either case nothing is kept.

The body is written to a private temporary file while it is hashed and counted, so memory stays
flat whatever the size and the file can be validated before anything reaches storage. The
report's 2-minute upload timeout is applied to idle time, between chunks, not to the whole
transfer: a 500 MiB file on a slow but steady link completes, a stalled one is cut after
BACKLINE_UPLOAD_TIMEOUT seconds without a byte (408 `upload_stalled`).

Temporary files live in a directory of the process's own, `var/uploads/<pid>`: a process that
is killed (SIGKILL, out of memory, a power cut) cannot remove its files, so every process
clears, when it starts, the directories of processes no longer running, and its own pid's
(left by an earlier process of the same pid, as after a container restart).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.to_thread
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from backline.errors import BadRequest, ProblemError
from backline.logging import get_logger
from backline.storage.base import Hasher

log = get_logger(__name__)

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


# The fields read besides `file` (the portal's forms carry their CSRF token); others are skipped.
FORM_FIELDS = frozenset({"sha256", "csrf_token"})
FORM_FIELD_LIMIT = 1024  # bytes of one field that is read
FORM_OVERHEAD = 64 * 1024  # all that is not the file (framing, headers, fields), at most
BOUNDARY_LIMIT = 70  # RFC 2046


class FormInvalid(BadRequest):
    code = "invalid_form"


async def chunks(request: Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """The body's chunks; cut after `idle_timeout` seconds without one."""
    body = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                chunk = await anext(body)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadStalled(
                f"No data arrived for {idle_timeout:g} seconds; the upload was cut."
            ) from None
        if chunk:
            yield chunk


def spool_directory(var_dir: Path) -> Path:
    """This process's own directory of temporary upload files."""
    return var_dir / "uploads" / str(os.getpid())


def _running(pid: int) -> bool:
    if pid == os.getpid():  # at start-up, what is there was left by an earlier process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_spool(var_dir: Path) -> int:
    """Remove the temporary files of processes that died; returns how many. Run at start-up,
    before this process makes any."""
    root = var_dir / "uploads"
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.isdigit() and not _running(int(entry.name)):
            removed += sum(1 for item in entry.rglob("*") if item.is_file())
            shutil.rmtree(entry, ignore_errors=True)
    return removed


async def clear_dead_spools(var_dir: Path) -> None:
    """`sweep_spool` off the event loop, saying what it removed."""
    removed = await anyio.to_thread.run_sync(sweep_spool, var_dir)
    if removed:
        log.warning("upload_leftovers_removed", files=removed)


async def _temporary(directory: Path) -> tuple[int, Path]:
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    descriptor, name = await anyio.to_thread.run_sync(
        lambda: tempfile.mkstemp(dir=directory, prefix=".upload-")
    )
    return descriptor, Path(name)


async def spool(
    request: Request,
    *,
    directory: Path,
    max_size: int,
    idle_timeout: float,
) -> tuple[Path, Hasher]:
    """Write the raw request body to a temporary file; the caller removes it."""
    return await spool_stream(chunks(request, idle_timeout), directory=directory, max_size=max_size)


async def spool_stream(
    stream: AsyncIterator[bytes], *, directory: Path, max_size: int
) -> tuple[Path, Hasher]:
    """Write a stream to a temporary file, hashing it on the way; the caller removes it.
    Nothing is left behind when the stream fails or is cut."""
    descriptor, path = await _temporary(directory)
    hasher = Hasher(max_size)
    try:
        with os.fdopen(descriptor, "wb") as file:
            async for chunk in stream:
                hasher.update(chunk)
                await anyio.to_thread.run_sync(file.write, chunk)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.Path(path).unlink(missing_ok=True)
        raise
    return path, hasher


class _Form:
    """python-multipart's callbacks, collecting one file part and small fields."""

    def __init__(self, hasher: Hasher) -> None:
        self.hasher = hasher
        self.pending = bytearray()  # file bytes parsed from the current chunk, to be written
        self.fields: dict[str, str] = {}
        self.files = 0
        self.ended = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._disposition, self._name, self._is_file = b"", "", False
        self._value.clear()

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("latin-1")
        self._is_file = b"filename" in options
        if self._is_file:
            if self._name != "file" or self.files:
                raise FormInvalid("The form takes exactly one file, in the field `file`.")
            self.files += 1

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.hasher.update(data[start:end])
            self.pending.extend(data[start:end])
        elif self._name in FORM_FIELDS:
            self._value.extend(data[start:end])
            if len(self._value) > FORM_FIELD_LIMIT:
                raise FormInvalid(f"The form field `{self._name}` is too long.")
        # any other field is skipped; its bytes count against FORM_OVERHEAD all the same

    def _end(self) -> None:
        self.ended = True

    def _part_end(self) -> None:
        if not self._is_file and self._name in FORM_FIELDS:
            self.fields[self._name] = self._value.decode("utf-8", "replace")


async def spool_form(
    request: Request,
    *,
    directory: Path,
    max_size: int,
    idle_timeout: float,
) -> tuple[Path, Hasher, dict[str, str]]:
    """Write a form's `file` part to a temporary file; returns it with the other fields."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > BOUNDARY_LIMIT:
        raise FormInvalid(f"A multipart form needs a boundary of 1 to {BOUNDARY_LIMIT} bytes.")
    form = _Form(Hasher(max_size))
    try:
        parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
    except (FormParserError, ValueError):
        raise FormInvalid("The multipart form's boundary is not usable.") from None
    descriptor, path = await _temporary(directory)
    received = 0
    try:
        with os.fdopen(descriptor, "wb") as file:
            async for chunk in chunks(request, idle_timeout):
                received += len(chunk)
                try:
                    parser.write(chunk)
                except MultipartParseError:
                    raise FormInvalid("The multipart form is malformed.") from None
                if received - form.hasher.size > FORM_OVERHEAD:
                    raise FormInvalid("The form holds too much besides the file.")
                if form.pending:
                    data, form.pending = bytes(form.pending), bytearray()
                    await anyio.to_thread.run_sync(file.write, data)
            try:
                parser.finalize()
            except MultipartParseError:
                raise FormInvalid("The multipart form is malformed.") from None
        if not form.ended:
            raise FormInvalid("The multipart form ends early.")
        if not form.files:
            raise FormInvalid("The form has no file in the field `file`.", code="missing_file")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.Path(path).unlink(missing_ok=True)
        raise
    return path, form.hasher, form.fields


def form_sha256(fields: dict[str, str]) -> str | None:
    """The optional `sha256` field of a form, hex."""
    value = fields.get("sha256", "").strip().lower()
    if not value:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise BadRequest("The sha256 field must be 64 hex digits.", code="invalid_digest")
    return value
