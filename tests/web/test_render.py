"""Portal rendering: hashed, long-cached static files, and a strict page policy."""

from __future__ import annotations

import re

import httpx


async def test_pages_use_hashed_static_files_cached_for_a_year(portal: httpx.AsyncClient) -> None:
    home = await portal.get("/")
    assert home.status_code == 200
    csp = home.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "script-src 'self'" in csp
    assert "<script" not in home.text
    assert "style=" not in home.text
    assert "<style" not in home.text
    match = re.search(r'href="(/static/portal\.[0-9a-f]{12}\.css)"', home.text)
    assert match
    sheet = await portal.get(match.group(1))
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    assert sheet.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await portal.get("/static/portal.css")).status_code == 404
