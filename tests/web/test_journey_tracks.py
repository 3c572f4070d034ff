"""Tracks in a real browser: an artist starts a track, fills in its details (an error shown
beside its field first), uploads a generated WAV while the progress bar fills, then the
artwork, and sends it for review; a staff member listens to it through the signed link and
approves it, then reads the audit log. Every page has no serious or critical axe-core
violation and no Content-Security-Policy violation.

The uploads go through the app (local storage); the page's choice of a direct upload when
storage presigns is tested in `test_track_pages`.
"""

from __future__ import annotations

import array
import io
import math
import os
import subprocess
import wave
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import DEFAULT_PASSWORD, free_port
from tests.served import Served, serve_env, served
from tests.web.browser import (
    MAX_PAGE_BYTES,
    page_bytes,
    serious_violations,
    shoot,
    watch_csp,
)
from tests.web.test_journey import BACKLINE

pytestmark = pytest.mark.slow

# Records each progress bar's changes in sessionStorage, which outlives the page's reload once
# an upload is done. Added through the DevTools protocol, so the page's CSP is not loosened.
WATCH_PROGRESS = """
document.addEventListener("DOMContentLoaded", () => {
  for (const bar of document.querySelectorAll("progress")) {
    new MutationObserver(() => {
      const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
      seen.push({id: bar.id, value: bar.value, max: bar.max, hidden: bar.hidden});
      sessionStorage.setItem("progress", JSON.stringify(seen));
    }).observe(bar, {attributes: true, attributeFilter: ["value", "hidden"]});
  }
});
"""
AUDIO_LOADED = (
    "() => [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)"
)
AUDIO_STATES = (
    "() => [...document.querySelectorAll('audio')]"
    ".map(a => ({ready: a.readyState, error: a.error && a.error.code, duration: a.duration}))"
)


def make_account(server: Served, email: str, role: str, database_url: str) -> None:
    subprocess.run(
        [*BACKLINE, "create-user", "--email", email, "--role", role, "--password-stdin"],
        input=DEFAULT_PASSWORD.encode(),
        cwd=server.workdir,
        env=serve_env(BACKLINE_DATABASE_URL=database_url),
        check=True,
        capture_output=True,
        timeout=60,
    )


def write_wav(path: Path, seconds: float = 20.0, rate: int = 44100) -> Path:
    """A stereo 16-bit sine, a few MiB: large enough for several progress events."""
    period = [int(9000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate // 10)]
    frames = array.array("h", [s for s in period for _ in (0, 1)] * int(seconds * 10))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames.tobytes())
    return path


def write_cover(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (1400, 1400), (40, 70, 160)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def checked(page: Any, csp: list[str]) -> None:
    assert serious_violations(page) == [], page.url
    assert csp == [], page.url
    assert 0 < page_bytes(page) < MAX_PAGE_BYTES, page.url


def log_in(context: Any, server: Served, email: str) -> tuple[Any, list[str]]:
    page = context.new_page()
    csp = watch_csp(page)
    page.goto(server.url + "/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")
    return page, csp


def progress_seen(page: Any, bar: str) -> list[dict[str, Any]]:
    seen = page.evaluate("() => JSON.parse(sessionStorage.getItem('progress') || '[]')")
    return [step for step in seen if step["id"] == bar]


def upload_with_progress(page: Any, csp: list[str], kind: str, file: Path) -> None:
    page.evaluate("() => sessionStorage.removeItem('progress')")
    page.locator(f"#{kind}").set_input_files(str(file))
    with page.expect_navigation(url=f"**done={kind}", timeout=60_000):
        page.get_by_role("button", name=f"Upload the {kind}").click()
    steps = progress_seen(page, f"{kind}-progress")
    assert steps, "the progress bar never moved"
    assert steps[0]["hidden"] is False  # shown as the upload starts
    assert steps[-1]["value"] == steps[-1]["max"] == 100  # and filled when it ended
    assert page.get_by_role("status").first.is_visible()
    checked(page, csp)


def artist_makes_a_track(page: Any, csp: list[str], tmp_path: Path, shots: Path) -> None:
    page.get_by_role("link", name="Tracks").first.click()
    page.get_by_label("Title").fill("Low Tide")
    page.get_by_role("button", name="Start the draft").click()
    page.get_by_role("link", name="Low Tide").click()
    checked(page, csp)
    assert "isrc" in page.locator("#missing").inner_text()

    page.get_by_label("Primary artist").fill("Nova")
    page.get_by_label("Genre").fill("Synth-pop")
    page.get_by_label("Explicit lyrics").select_option("no")
    page.get_by_label("Language").fill("en")
    page.get_by_label("Release date").fill("2027-03-01")
    page.get_by_label("ISRC").fill("NOT-AN-ISRC")
    page.get_by_label("Credit 1: name").fill("Nova")
    page.get_by_label("Credit 1: role").fill("writer")
    page.get_by_label("Credit 1: split (%)").fill("100")
    page.get_by_role("button", name="Save the details").click()
    page.locator("#isrc-error").wait_for(state="visible")  # the API's ISRC rule, by the field
    assert page.get_by_label("Genre").input_value() == "Synth-pop"  # what was typed is kept
    checked(page, csp)
    page.get_by_label("ISRC").fill("US-RC1-76-07839")
    page.get_by_role("button", name="Save the details").click()
    page.wait_for_url("**done=saved")
    checked(page, csp)
    assert page.locator("#missing").inner_text().split() == ["audio", "artwork"]

    # A file that is not audio: the API's refusal, announced beside the field.
    page.locator("#audio").set_input_files(str(write_cover(tmp_path / "not-audio.png")))
    page.get_by_role("button", name="Upload the audio").click()
    page.locator("#audio-error").wait_for(state="visible")  # once the API has answered
    assert page.get_by_label("Audio file").get_attribute("aria-invalid") == "true"
    checked(page, csp)
    upload_with_progress(page, csp, "audio", write_wav(tmp_path / "low-tide.wav"))
    page.wait_for_function(AUDIO_LOADED)
    assert page.evaluate(AUDIO_STATES)[0]["error"] is None
    upload_with_progress(page, csp, "artwork", write_cover(tmp_path / "cover.png"))
    assert page.locator("#missing-intro").inner_text() == "Everything is in place."
    shoot(page, shots, "track")
    page.get_by_role("button", name="Send for review").click()
    page.wait_for_url("**done=submitted")
    assert page.locator("#track-status").inner_text() == "submitted"
    checked(page, csp)


def staff_approve(desk: Any, csp: list[str], shots: Path) -> None:
    desk.get_by_role("link", name="Staff").click()
    desk.get_by_role("link", name="Tracks").last.click()
    desk.wait_for_url("**/staff/tracks")
    checked(desk, csp)
    # The player reads the audio through its signed link, under the page's policy.
    desk.wait_for_function(AUDIO_LOADED)
    states = desk.evaluate(AUDIO_STATES)
    assert states == [
        {"ready": states[0]["ready"], "error": None, "duration": states[0]["duration"]}
    ]
    assert states[0]["ready"] >= 1
    assert 19 < states[0]["duration"] < 21
    desk.get_by_role("button", name="Claim Low Tide").click()
    desk.wait_for_url("**/staff/tracks")
    desk.get_by_role("button", name="Reject Low Tide").click()  # no reason: refused
    desk.get_by_role("alert").first.wait_for(state="visible")
    checked(desk, csp)
    desk.get_by_role("button", name="Approve Low Tide").click()
    desk.get_by_text("No tracks are waiting.").wait_for(state="visible")
    checked(desk, csp)


def journey(browser: Any, server: Served, database_url: str, tmp_path: Path, shots: Path) -> None:
    make_account(server, "nova@example.com", "artist", database_url)
    make_account(server, "sam@example.com", "staff", database_url)
    person = browser.new_context(viewport={"width": 1280, "height": 800})
    person.add_init_script(WATCH_PROGRESS)
    page, csp = log_in(person, server, "nova@example.com")
    artist_makes_a_track(page, csp, tmp_path, shots)

    staff = browser.new_context(viewport={"width": 1280, "height": 800})
    desk, desk_csp = log_in(staff, server, "sam@example.com")
    desk.goto(server.url + "/staff/tracks")
    desk.wait_for_function(AUDIO_LOADED)
    shoot(desk, shots, "staff-tracks")
    desk.goto(server.url + "/dashboard")
    staff_approve(desk, desk_csp, shots)
    desk.get_by_role("link", name="Audit log").click()
    checked(desk, desk_csp)
    assert desk.get_by_role("cell", name="login_ok").first.is_visible()
    shoot(desk, shots, "staff-audit")
    staff.close()

    page.reload()
    assert page.locator("#track-status").inner_text() == "approved"
    person.close()


def test_a_track_from_draft_to_approved(served_database: str, browser: Any, tmp_path: Path) -> None:
    shots = Path(os.environ.get("BACKLINE_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    port = free_port()
    with served(
        tmp_path / "server",
        port=port,
        BACKLINE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        BACKLINE_EMAIL_BACKEND="file",
        BACKLINE_EMAIL_FILE_DIR=str(tmp_path / "mail"),
        BACKLINE_DATABASE_URL=served_database,
    ) as server:
        journey(browser, server, served_database, tmp_path, shots)
