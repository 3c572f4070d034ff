"""Both storage backends: streamed writes with SHA-256, caps, mismatches, reads, deletes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backline.storage.base import DigestMismatch, Storage, TooLarge
from backline.storage.keys import InvalidKey, new_key, validate
from backline.storage.local import LocalStorage
from backline.storage.s3 import PART_SIZE, S3Storage
from tests.conftest import BUCKET, S3_KINDS
from tests.s3servers import S3Server


def s3_storage(s3: S3Server) -> S3Storage:
    return S3Storage(bucket=s3.bucket, endpoint_url=s3.endpoint, region="us-east-1")


@pytest.fixture(params=["local", *S3_KINDS])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend in turn: the local directory, then S3 on moto, then S3 on radosgw."""
    if request.param == "local":
        return LocalStorage(tmp_path / "objects")
    return s3_storage(request.getfixturevalue(f"{request.param}_s3"))


async def stream(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key)])


@pytest.mark.parametrize("length", [0, 1, 300_000])
async def test_a_write_is_hashed_and_reads_back(storage: Storage, length: int) -> None:
    data = os.urandom(length)
    key = new_key("audio", "wav")
    stored = await storage.put(
        key,
        stream(data),
        content_type="audio/wav",
        max_size=10**7,
        expected_sha256=hashlib.sha256(data).hexdigest(),
    )
    assert stored.size == length
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await storage.size(key) == length
    assert await read_all(storage, key) == data
    await storage.delete(key)
    assert await storage.size(key) is None


@pytest.mark.parametrize(
    ("start", "length"), [(0, 10), (5, None), (1024 * 1024 - 3, 10), (299_990, 10), (0, 0)]
)
async def test_a_read_starts_and_stops_where_asked(
    storage: Storage, start: int, length: int | None
) -> None:
    data = os.urandom(1024 * 1024 + 300_000)  # more than one read chunk
    key = new_key("audio")
    await storage.put(key, stream(data), content_type="audio/wav", max_size=10**7)
    part = b"".join([chunk async for chunk in storage.read(key, start=start, length=length)])
    assert part == data[start : None if length is None else start + length]


async def test_a_multipart_upload_keeps_the_whole_file_hash(storage: Storage) -> None:
    data = os.urandom(PART_SIZE * 2 + 12345)
    key = new_key("audio")
    stored = await storage.put(
        key, stream(data, 1024 * 1024), content_type="audio/wav", max_size=10**8
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(storage, key) == data


async def test_a_wrong_digest_keeps_nothing(storage: Storage) -> None:
    for data in (b"small body", os.urandom(PART_SIZE + 10)):
        key = new_key("audio")
        with pytest.raises(DigestMismatch):
            await storage.put(
                key,
                stream(data, 1024 * 1024),
                content_type="audio/wav",
                max_size=10**8,
                expected_sha256="0" * 64,
            )
        assert await storage.size(key) is None


async def test_the_cap_stops_at_the_first_byte_over(storage: Storage) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 50_000_000:  # bounded: the cap must stop us long before
            sent += 65536
            yield b"x" * 65536

    key = new_key("audio")
    with pytest.raises(TooLarge):
        await storage.put(key, endless(), content_type="audio/wav", max_size=1_000_000)
    assert sent <= 1_000_000 + 65536
    assert await storage.size(key) is None


async def test_an_interrupted_write_keeps_nothing(storage: Storage) -> None:
    class Gone(Exception):
        pass

    async def breaks() -> AsyncIterator[bytes]:
        yield os.urandom(PART_SIZE + 1)
        raise Gone

    key = new_key("audio")
    with pytest.raises(Gone):
        await storage.put(key, breaks(), content_type="audio/wav", max_size=10**8)
    assert await storage.size(key) is None


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "/etc/passwd",
        "audio/../../x",
        "audio/00/../../../etc",
        "audio\x00/x",
        "audio/0a/" + "0" * 31 + "\u0430",
        "",
        "audio/ab/" + "a" * 32 + "/../x",
        "AUDIO/ab/x",
    ],
)
def test_keys_that_could_walk_out_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidKey):
        validate(key)
    with pytest.raises(InvalidKey):
        LocalStorage(tmp_path).path(key)


async def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    key = new_key("audio")
    link = storage.path(key)
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    assert await storage.size(key) is None
    with pytest.raises(OSError):  # noqa: PT011 - ELOOP from O_NOFOLLOW
        await read_all(storage, key)
    folder_key = new_key("audio")
    (tmp_path / "objects" / folder_key.split("/")[0] / folder_key.split("/")[1]).symlink_to(
        tmp_path
    )
    with pytest.raises(ValueError, match="escapes"):
        storage.path(folder_key)


async def test_s3_presigned_urls_sign_what_they_promise(s3_server: S3Server) -> None:
    import base64
    from urllib.parse import parse_qs, urlsplit

    import httpx

    storage = s3_storage(s3_server)
    data = b"RIFF....WAVEfmt presigned body"
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    key = new_key("upload")
    url = await storage.signed_put(
        key, expires=300, sha256_b64=digest, size=len(data), content_type="audio/wav"
    )
    signed = parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    # The signature covers the declared digest, size and type: a client cannot swap them.
    assert {"x-amz-checksum-sha256", "content-length", "content-type"} <= set(signed)
    async with httpx.AsyncClient() as client:
        put = await client.put(
            url,
            content=data,
            headers={
                "Content-Type": "audio/wav",
                "x-amz-checksum-sha256": digest,
            },
        )
        assert put.status_code == 200, put.text
        get = await client.get(await storage.signed_get(key, expires=60))
    assert get.content == data


async def test_s3_down_is_a_503(tmp_path: Path) -> None:
    from backline.storage.base import StorageUnavailable
    from tests.conftest import free_port

    storage = S3Storage(
        bucket=BUCKET, endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1", timeout=2
    )
    with pytest.raises(StorageUnavailable):
        await storage.put(new_key("audio"), stream(b"data"), content_type="audio/wav", max_size=100)
