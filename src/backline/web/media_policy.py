"""The page policy for portal pages that play audio from, or upload it straight to, object
storage: the strict HTML policy, with the storage's origin added to `media-src` (an `<audio>`
element reading a presigned S3 URL) and `connect-src` (a script sending a file to a presigned
PUT URL). With local storage the signed links are the app's own (`/media/...`), so `'self'`
covers them and the policy is the strict one unchanged.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from backline.config import Settings
from backline.middleware.security import HTML_CSP
from backline.web.render import NO_STORE

AWS_ORIGIN = "https://*.amazonaws.com"


def storage_origins(settings: Settings) -> list[str]:
    """Where presigned S3 URLs may point: the endpoint, and its bucket subdomain (botocore
    addresses a bucket by name when the endpoint is a host name, by path when an address)."""
    if not settings.s3_bucket:
        return []
    if not settings.s3_endpoint_url:
        return [AWS_ORIGIN]
    endpoint = urlsplit(settings.s3_endpoint_url)
    origins = [f"{endpoint.scheme}://{endpoint.netloc}"]
    host = endpoint.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host and host != "localhost":
            origins.append(f"{endpoint.scheme}://*.{endpoint.netloc}")
    return origins


def media_policy(settings: Settings) -> str:
    origins = " ".join(storage_origins(settings))
    if not origins:
        return HTML_CSP
    policy = HTML_CSP.replace("connect-src 'self'", f"connect-src 'self' {origins}")
    return f"{policy}; media-src 'self' {origins}"


def media_page_headers(settings: Settings) -> dict[str, str]:
    return {**NO_STORE, "Content-Security-Policy": media_policy(settings)}
