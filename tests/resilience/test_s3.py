"""The S3 endpoint stopped in the middle of an upload to a served Backline, then started again.

The moto server is the test's own: the upload's body is held back halfway, the server is
stopped, the rest is sent, and the app must answer 503 `storage_unavailable` having kept
nothing: no row pointing at an object, no object or unfinished multipart upload in the bucket,
no temporary file. Started again on the same port (moto keeps its state in this process),
the same process stores the next upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from backline.accounts.models import Role
from tests.conftest import BUCKET, S3Server, free_port
from tests.resilience.conftest import SECRET, add_account, sign_in
from tests.served import read_response, served
from tests.tracks.conftest import digest_header, wav

pytestmark = [pytest.mark.slow]


class OwnMoto:
    """A moto S3 server on a fixed port that the test stops and starts again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


async def test_the_store_stopped_mid_upload_keeps_nothing_and_the_next_upload_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = OwnMoto(free_port())
    moto.start()
    s3 = S3Server("moto", f"http://127.0.0.1:{moto.port}", BUCKET, "testing", "testing-secret")
    httpx.post(f"{s3.endpoint}/moto-api/reset")  # noqa: ASYNC210 - nothing else runs yet
    s3.client().create_bucket(Bucket=BUCKET)
    workdir = tmp_path / "serve"
    try:
        with served(
            workdir,
            BACKLINE_ENV="test",
            BACKLINE_SECRET_KEY=SECRET,
            BACKLINE_STORAGE_BACKEND="s3",
            BACKLINE_S3_BUCKET=BUCKET,
            BACKLINE_S3_ENDPOINT_URL=s3.endpoint,
            BACKLINE_S3_REGION="us-east-1",
            BACKLINE_HTTP_TIMEOUT="3",
            BACKLINE_UPLOAD_TIMEOUT="20",
            AWS_ACCESS_KEY_ID=s3.access_key,
            AWS_SECRET_ACCESS_KEY=s3.secret_key,
        ) as server:
            await add_account(server.database_url, "artist@example.com", role=Role.ARTIST)
            async with (
                asyncio.timeout(120),
                httpx.AsyncClient(base_url=server.url, timeout=30) as client,
            ):
                artist = await sign_in(client, "artist@example.com")
                track = (
                    await client.post("/api/tracks", json={"title": "Cut"}, headers=artist)
                ).json()
                path = f"/api/tracks/{track['id']}"
                before = (await client.get(path, headers=artist)).json()
                data = wav(seconds=4.0)

                with server.connect(timeout=30) as sock:
                    sock.sendall(
                        (
                            f"PUT {path}/audio HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            f"Content-Type: audio/wav\r\nContent-Length: {len(data)}\r\n"
                            f"Authorization: {artist['Authorization']}\r\n\r\n"
                        ).encode()
                        + data[: len(data) // 2]
                    )
                    await until_receiving(client, path, artist)
                    moto.stop()  # the store goes away while the body is still coming
                    sock.sendall(data[len(data) // 2 :])
                    answer = await asyncio.to_thread(read_response, sock.makefile("rb"))
                assert answer.status == 503, answer.body
                assert answer.headers["content-type"] == "application/problem+json"
                assert b'"code":"storage_unavailable"' in answer.body

                after = (await client.get(path, headers=artist)).json()
                assert after == before  # no row changed, none points at an object
                assert files_under(workdir / "var" / "uploads") == []

                moto.start()  # the same port, the same bucket; Backline is not restarted
                assert s3.keys() == []
                assert s3.unfinished_uploads() == []
                stored = await client.put(
                    f"{path}/audio",
                    content=data,
                    headers={"Content-Type": "audio/wav", **digest_header(data), **artist},
                )
                assert stored.status_code == 200, stored.text
                assert stored.json()["audio"]["sha256"] == hashlib.sha256(data).hexdigest()
                assert list(s3.objects().values()) == [data]
            assert "unhandled_exception" not in server.output
    finally:
        moto.stop()


async def until_receiving(client: httpx.AsyncClient, path: str, auth: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        upload = (await client.get(path, headers=auth)).json()["upload"]
        if upload is not None and upload["state"] == "receiving":
            return
        assert time.monotonic() < deadline, "the upload never began"
        await asyncio.sleep(0.05)
