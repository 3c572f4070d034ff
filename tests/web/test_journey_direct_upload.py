"""Direct uploads in a real browser: with S3 storage the track page asks for a presigned URL,
sends the file straight to the bucket (the progress bar filling as it goes), then says the
upload is complete; the app checks the object there, and the page plays the audio from the
bucket, which the page's policy allows.

A moto server stands in for the bucket, with its blanket CORS answer turned off, so that, as on
S3, only the bucket's own CORS rules let a page of another origin PUT to it: the browser sends
its preflight `OPTIONS` first. Without the rule README's "Tracks and storage" gives, the
upload is refused and the page says so beside the field; with it, the upload lands. The upload
also starts with an expired access token, which the script renews before asking for the URL.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.moto_server import werkzeug_app

from tests.conftest import BUCKET, _serving, free_port
from tests.s3servers import S3Server, moto_server
from tests.served import served
from tests.web.browser import expire_access
from tests.web.test_journey_tracks import (
    AUDIO_LOADED,
    AUDIO_STATES,
    WATCH_PROGRESS,
    log_in,
    make_account,
    upload_with_progress,
    write_wav,
)

pytestmark = pytest.mark.slow
WAIT_MS = 30_000


@pytest.fixture
def bucket_cors_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A moto server that answers CORS as S3 does: from the bucket's rules alone."""
    monkeypatch.setattr(werkzeug_app, "DISABLE_GLOBAL_CORS", True)  # read as moto builds its app
    with moto_server(free_port(), BUCKET) as s3:
        yield _serving(s3, monkeypatch)


def direct_upload_rule(origin: str) -> dict[str, Any]:
    """What a bucket needs for the portal's direct uploads (README, "Tracks and storage")."""
    return {
        "CORSRules": [
            {
                "AllowedOrigins": [origin],
                "AllowedMethods": ["PUT"],
                "AllowedHeaders": ["content-type", "x-amz-checksum-sha256"],
                "MaxAgeSeconds": 3000,
            }
        ]
    }


def test_audio_goes_straight_to_the_bucket_when_storage_presigns(
    served_database: str, browser: Any, tmp_path: Path, bucket_cors_s3: S3Server
) -> None:
    s3 = bucket_cors_s3
    key = secrets.token_urlsafe(48)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=origin,
        BACKLINE_DATABASE_URL=served_database,
        BACKLINE_SECRET_KEY=key,
        BACKLINE_STORAGE_BACKEND="s3",
        BACKLINE_S3_BUCKET=BUCKET,
        BACKLINE_S3_ENDPOINT_URL=s3.endpoint,
        BACKLINE_S3_REGION="us-east-1",
    ) as server:
        make_account(server, "mira@example.com", "artist", served_database)
        person = browser.new_context(viewport={"width": 1280, "height": 800})
        person.set_default_timeout(WAIT_MS)
        person.add_init_script(WATCH_PROGRESS)
        page, csp = log_in(person, server, "mira@example.com")
        page.goto(server.url + "/tracks")
        page.get_by_label("Title").fill("Bucket Song")
        page.get_by_role("button", name="Start the draft").click()
        page.get_by_role("link", name="Bucket Song").click()
        page.wait_for_url("**/tracks/*")
        assert page.locator("form[data-upload=audio]").get_attribute("data-direct") == "true"
        song = write_wav(tmp_path / "bucket.wav", seconds=5)

        # No CORS rule on the bucket: the browser refuses to send, and the page says so.
        page.locator("#audio").set_input_files(str(song))
        page.get_by_role("button", name="Upload the audio").click()
        page.locator("#audio-error").wait_for(state="visible")
        assert "connection failed" in page.locator("#audio-error").inner_text()
        assert s3.keys() == []

        s3.client().put_bucket_cors(Bucket=BUCKET, CORSConfiguration=direct_upload_rule(origin))
        sent: list[tuple[str, str, int]] = []
        page.on("response", lambda r: sent.append((r.request.method, r.url, r.status)))
        expire_access(person, key.encode())
        upload_with_progress(page, csp, "audio", song)
        track = page.url.removeprefix(server.url + "/tracks/").partition("?")[0]
        to_app = [(m, u.removeprefix(server.url), s) for m, u, s in sent if u.startswith(origin)]
        assert to_app[:3] == [
            ("POST", f"/api/tracks/{track}/upload-url", 401),
            ("POST", "/api/auth/refresh", 200),
            ("POST", f"/api/tracks/{track}/upload-url", 200),
        ]
        assert ("POST", f"/api/tracks/{track}/audio/complete", 202) in to_app
        assert not [m for m, u, _ in to_app if m == "PUT"]
        to_bucket = [(m, s) for m, u, s in sent if u.startswith(f"{s3.endpoint}/{BUCKET}/")]
        assert to_bucket[0] == ("PUT", 200)
        assert page.locator("#audio-facts").is_visible()
        page.wait_for_function(AUDIO_LOADED, timeout=WAIT_MS)
        states = page.evaluate(AUDIO_STATES)
        assert states[0]["error"] is None
        assert states[0]["ready"] >= 1
        stored = s3.keys()
        assert [name.split("/")[0] for name in stored] == ["audio"]  # checked and moved
        person.close()
