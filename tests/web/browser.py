"""Driving Debian's Chromium with Playwright against a served Backline, and checking pages.

Chromium is launched headless from its packaged path (never a downloaded browser). Without it
the browser tests skip, unless BACKLINE_REQUIRE_SERVICES=1 makes that a failure. Each page is
checked with axe-core (vendored, see vendor/README.md): no serious or critical violation, and
no Content-Security-Policy violation in the console.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from collections.abc import Collection
from datetime import timedelta
from pathlib import Path
from typing import Any

import time_machine

from backline.accounts import tokens
from backline.db import utcnow

CHROMIUM = Path(os.environ.get("BACKLINE_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
MAIL_SECONDS = 20
MAX_PAGE_BYTES = 100_000  # a page and its stylesheet, before media


def watch_csp(page: Any) -> list[str]:
    """Collects the page's console messages that report a Content-Security-Policy violation."""
    found: list[str] = []
    page.on(
        "console",
        lambda message: (
            found.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return found


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now.

    The script is evaluated through the DevTools protocol, which the page's CSP does not
    govern, so the policy stays as strict as it is for people.
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    return list(results)


def page_bytes(page: Any) -> int:
    """What the page weighs before media: its HTML, scripts and stylesheets as transferred."""
    return int(
        page.evaluate(
            "() => [performance.getEntriesByType('navigation')[0],"
            " ...performance.getEntriesByType('resource')"
            ".filter(r => ['script', 'link', 'css'].includes(r.initiatorType))]"
            ".reduce((sum, r) => sum + (r.encodedBodySize || 0), 0)"
        )
    )


def focus_is_visible(page: Any) -> bool:
    """Whether the element the keyboard focused draws an outline."""
    return bool(
        page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }"
        )
    )


def shoot(page: Any, folder: Path, name: str) -> None:
    """Screenshots of the page at a phone's width and a desktop's, full length."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= size["width"], f"{name} scrolls sideways at {label} width"
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def emailed_link(mail_dir: Path, path: str, *, seen: Collection[Path] = ()) -> str:
    """The first `path?token=...` link in the emails written, other than those `seen`."""
    pattern = re.compile(rf"https?://[^\s\"'<>]+{re.escape(path)}\?token=[A-Za-z0-9_-]+")
    deadline = time.monotonic() + MAIL_SECONDS
    while True:
        messages = sorted(mail_dir.glob("*.eml")) if mail_dir.exists() else []
        for message in (m for m in messages if m not in seen):
            parsed = email.message_from_bytes(message.read_bytes(), policy=email.policy.default)
            body = parsed.get_body(("plain",))  # type: ignore[attr-defined]
            text = body.get_content() if body is not None else ""
            if match := pattern.search(text):
                return match.group(0)
        assert time.monotonic() < deadline, f"no email with a {path} link in {mail_dir}"
        time.sleep(0.1)


def expire_access(context: Any, key: bytes, *, minutes: int = 15) -> str:
    """Swaps the browser's access cookie for one of the same session whose token lapsed a
    minute ago (issued, through the token clock's seam, `minutes` + 1 minutes back), as a
    cookie the browser did not drop in time would be; the served app signs with `key`.
    Answers the lapsed token."""
    cookie = next(c for c in context.cookies() if c["name"] == "backline_access")
    claims = tokens.verify_access(key, cookie["value"])
    with time_machine.travel(utcnow() - timedelta(minutes=minutes + 1), tick=False):
        lapsed = tokens.issue_access(
            key, user_id=claims.user_id, session_id=claims.session_id, minutes=minutes
        )
    context.add_cookies([{**cookie, "value": lapsed}])
    return lapsed
