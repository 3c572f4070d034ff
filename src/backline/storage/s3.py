"""The S3 backend: AWS S3, Cloudflare R2, MinIO, through aioboto3.

Uploads stream as a multipart upload in 8 MiB parts, each part carrying its own SHA-256
(`ChecksumSHA256`) for the store to check; a file smaller than one part goes up in one PUT with
the whole file's SHA-256. S3 and R2 keep only a composite checksum for multipart objects, so
Backline computes and keeps the whole file's SHA-256 itself, and never relies on the store
alone (some stores accept a wrong checksum). A refused or interrupted upload is aborted: no
parts, no object, remain.

boto3 computes CRC checksums on every request by default, which some S3-compatible stores
reject: BACKLINE_S3_REQUEST_CHECKSUM sets botocore's `request_checksum_calculation`
(`when_required`, the default here, or `when_supported`). Credentials come from the standard
AWS variables or files.

aioboto3 and botocore (some 30 MB, and half a second to import) are imported when an
`S3Storage` is built: a deployment that stores objects locally never loads them, though other
modules may name `S3Storage` (e.g. to tell whether uploads can go straight to the store).

Where stores differ (the tests run against moto and Ceph's radosgw, tests/s3servers.py):

* a presigned PUT signs `x-amz-checksum-sha256`, but Ceph 16's radosgw (like moto) stores a
  body that does not match it: the upload verifier's own re-hash is the only check there;
* a store that goes away during a multipart upload cannot be told to abort it, and its parts
  stay, invisible in listings, until a bucket lifecycle rule (AbortIncompleteMultipartUpload)
  reclaims them; a single PUT cut off keeps nothing on radosgw.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from backline.config import Settings
from backline.storage.base import (
    Hasher,
    ObjectMissing,
    StorageUnavailable,
    StoredObject,
    file_chunks,
)
from backline.storage.keys import validate

MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
PART_SIZE = 8 * 1024 * 1024
READ_CHUNK = 1024 * 1024


class S3Storage:
    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str | None,
        checksum_calculation: str = "when_required",
        timeout: float = 120.0,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        import aioboto3  # imported here, only where S3 is configured (see the module docstring)
        from botocore.config import Config

        self.session = aioboto3.Session()
        self.config = Config(
            request_checksum_calculation=checksum_calculation,
            response_checksum_validation="when_required",
            connect_timeout=10,
            read_timeout=timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            signature_version="s3v4",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        assert settings.s3_bucket is not None
        return cls(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            checksum_calculation=settings.s3_request_checksum,
            timeout=settings.upload_timeout,
        )

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        from botocore.exceptions import BotoCoreError, ClientError  # loaded by __init__ already

        try:
            async with self.session.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=self.config
            ) as client:
                yield client
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                raise ObjectMissing("The object is not in the store.") from None
            raise StorageUnavailable(f"Object storage failed: {type(exc).__name__}.") from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"Object storage failed: {type(exc).__name__}.") from None

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str,
        max_size: int,
        expected_sha256: str | None = None,
    ) -> StoredObject:
        validate(key)
        hasher = Hasher(max_size)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        async with self.client() as s3:
            try:
                async for chunk in chunks:
                    hasher.update(chunk)
                    buffer += chunk
                    while len(buffer) >= PART_SIZE:
                        if upload_id is None:
                            created = await s3.create_multipart_upload(
                                Bucket=self.bucket,
                                Key=key,
                                ContentType=content_type,
                                ChecksumAlgorithm="SHA256",
                            )
                            upload_id = created["UploadId"]
                        part, buffer = bytes(buffer[:PART_SIZE]), buffer[PART_SIZE:]
                        parts.append(await self._part(s3, key, upload_id, len(parts) + 1, part))
                hasher.verify(expected_sha256)
                if upload_id is None:
                    await s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=bytes(buffer),
                        ContentType=content_type,
                        ChecksumSHA256=hasher.b64digest,
                    )
                else:
                    if buffer:
                        parts.append(
                            await self._part(s3, key, upload_id, len(parts) + 1, bytes(buffer))
                        )
                    await s3.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                    )
            except BaseException:
                if upload_id is not None:
                    # With the store gone this fails too, and the parts stay (see above).
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                raise
        return StoredObject(key=key, size=hasher.size, sha256=hasher.hexdigest)

    async def put_file(
        self, key: str, path: Path, *, content_type: str, size: int, sha256: str
    ) -> StoredObject:
        return await self.put(
            key, file_chunks(path), content_type=content_type, max_size=size, expected_sha256=sha256
        )

    async def _part(
        self, s3: Any, key: str, upload_id: str, number: int, data: bytes
    ) -> dict[str, Any]:
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        answer = await s3.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

    async def read(
        self, key: str, *, start: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        validate(key)
        if length == 0:
            return
        span: dict[str, str] = {}
        if start or length is not None:
            last = "" if length is None else str(start + length - 1)
            span["Range"] = f"bytes={start}-{last}"
        async with self.client() as s3:
            answer = await s3.get_object(Bucket=self.bucket, Key=key, **span)
            body = answer["Body"]  # aiobotocore's StreamingBody
            try:
                while chunk := await body.read(READ_CHUNK):
                    yield chunk
            finally:
                body.close()

    async def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError  # loaded by __init__ already

        validate(key)
        async with self.client() as s3:
            try:
                answer = await s3.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in MISSING:
                    return None
                raise
        size: int = answer["ContentLength"]
        return size

    async def delete(self, key: str) -> None:
        validate(key)
        async with self.client() as s3:
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def copy(self, source: str, target: str, *, content_type: str) -> None:
        """A server-side copy (objects up to 5 GiB, the most a presigned PUT can bring)."""
        validate(source)
        validate(target)
        async with self.client() as s3:
            await s3.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                ContentType=content_type,
                MetadataDirective="REPLACE",
            )

    async def signed_get(self, key: str, *, expires: int, content_type: str | None = None) -> str:
        validate(key)
        params = {"Bucket": self.bucket, "Key": key}
        if content_type is not None:
            params["ResponseContentType"] = content_type
        async with self.client() as s3:
            url: str = await s3.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires
            )
        return url

    async def signed_put(
        self, key: str, *, expires: int, sha256_b64: str, size: int, content_type: str
    ) -> str:
        """A presigned PUT whose signature covers the declared SHA-256, size and type.

        The store may or may not check the body against that SHA-256 (radosgw 16 does not):
        the object counts only once the verifier has re-hashed it.
        """
        validate(key)
        async with self.client() as s3:
            url: str = await s3.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ChecksumSHA256": sha256_b64,
                    "ContentLength": size,
                    "ContentType": content_type,
                },
                ExpiresIn=expires,
            )
        return url

    async def check(self) -> None:
        async with self.client() as s3:
            await s3.head_bucket(Bucket=self.bucket)
