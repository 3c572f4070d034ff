"""Every email renders in HTML and text, escaped, with links built from the public URL."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from backline.cli import app
from backline.email.templates import CATALOGUE, UnknownTemplate, render, render_sample

REQUIRED = {
    "verify_email",
    "password_reset",
    "password_changed",
    "account_locked",
    "new_sign_in",
    "signup_attempt",
    "email_change_requested",
    "application_received",
    "application_approved",
    "application_rejected",
    "track_approved",
    "track_rejected",
    "recovery_code_used",
}


def test_the_catalogue_has_every_transactional_email() -> None:
    assert set(CATALOGUE) == REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_email_renders_both_parts_with_public_links(name: str) -> None:
    rendered = render_sample(name, public_url="https://app.backline.example/")
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert "Sam Sample" in rendered.text
    assert rendered.html.lstrip().startswith("<!doctype html>")
    links = re.findall(r"https?://[^\s\"<]+", rendered.text)
    assert links
    assert all(link.startswith("https://app.backline.example") for link in links)
    html_links = re.findall(r'href="([^"]+)"', rendered.html)
    assert html_links
    assert all(h.startswith("https://app.backline.example") for h in html_links)


def test_token_links_follow_the_contract() -> None:
    verify = render(
        "verify_email", {"token": "a b&c", "expires_hours": 24}, public_url="https://x.example"
    )
    assert "https://x.example/verify-email?token=a+b%26c" in verify.text
    reset = render(
        "password_reset", {"token": "t1", "expires_minutes": 60}, public_url="https://x.example"
    )
    assert "https://x.example/reset-password?token=t1" in reset.text


def test_html_is_escaped_and_text_is_not() -> None:
    rendered = render(
        "track_rejected",
        {"title": "<script>alert(1)</script>", "reason": "Tom & Jerry's <b>mix</b>"},
        public_url="https://x.example",
        display_name="<img src=x onerror=alert(1)>",
    )
    assert "<script>" not in rendered.html
    assert "<img src=x" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "Tom &amp; Jerry&#39;s &lt;b&gt;mix&lt;/b&gt;" in rendered.html
    assert "Tom & Jerry's <b>mix</b>" in rendered.text
    assert rendered.subject == "Your track “<script>alert(1)</script>” needs changes"


def test_missing_context_is_an_error_not_a_blank() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render("verify_email", {}, public_url="https://x.example")
    with pytest.raises(UnknownTemplate):
        render("nope", {}, public_url="https://x.example")


def test_preview_command_renders_each_email() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["email", "preview"])
    assert listed.exit_code == 0
    assert set(listed.stdout.split()) == REQUIRED
    for name in REQUIRED:
        text = runner.invoke(app, ["email", "preview", name])
        assert text.exit_code == 0, text.output
        assert text.stdout.startswith("Subject: ")
        html = runner.invoke(app, ["email", "preview", name, "--html"])
        assert "<!doctype html>" in html.stdout
    unknown = runner.invoke(app, ["email", "preview", "nope"])
    assert unknown.exit_code == 1
    assert "no email named 'nope'" in unknown.stderr
