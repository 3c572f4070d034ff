"""The policy of pages that play or upload media: the storage's origin, and nothing looser."""

from __future__ import annotations

from typing import Any

import pytest

from backline.middleware.security import HTML_CSP
from backline.web.media_policy import media_policy, storage_origins


@pytest.mark.parametrize(
    ("endpoint", "origins"),
    [
        (None, ["https://*.amazonaws.com"]),
        ("http://127.0.0.1:9000", ["http://127.0.0.1:9000"]),
        ("http://localhost:9000/", ["http://localhost:9000"]),
        (
            "https://acct.r2.cloudflarestorage.com",
            ["https://acct.r2.cloudflarestorage.com", "https://*.acct.r2.cloudflarestorage.com"],
        ),
    ],
    ids=["aws", "address", "localhost", "hostname"],
)
def test_the_storage_origin_is_added_for_s3(
    make_settings: Any, endpoint: str | None, origins: list[str]
) -> None:
    settings = make_settings(storage_backend="s3", s3_bucket="b", s3_endpoint_url=endpoint)
    assert storage_origins(settings) == origins
    policy = media_policy(settings)
    assert f"media-src 'self' {' '.join(origins)}" in policy
    assert f"connect-src 'self' {' '.join(origins)}" in policy
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy


def test_local_storage_keeps_the_strict_policy(make_settings: Any) -> None:
    assert media_policy(make_settings()) == HTML_CSP
