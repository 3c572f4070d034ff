"""Policies: every route family has one, and limits change without code."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from backline.cli import app
from backline.config import Settings
from backline.ratelimit.policies import DEFAULTS, load


def test_every_route_family_has_a_policy() -> None:
    assert {
        "global",
        "register",
        "login",
        "resend_verification",
        "forgot_password",
        "reset_password",
        "email_change",
        "refresh",
        "oidc",
        "oidc_failure",
        "upload",
        "chat_message",
        "chat_tokens",
        "mfa_verify",
        "mfa_manage",
        "mfa_passkey",
        "passkey_login",
        "passkey_register",
    } <= set(DEFAULTS)


def test_the_report_s_reset_limits_and_failure_modes() -> None:
    forgot = DEFAULTS["forgot_password"]
    assert forgot.limits == "5/hour"
    assert set(forgot.keys) == {"ip", "email"}
    credential = {
        "login",
        "login_account",
        "register",
        "resend_verification",
        "forgot_password",
        "reset_password",
        "email_change",
        "refresh",
        "mfa_verify",
        "mfa_manage",
        "mfa_passkey",
        "oidc",
        "oidc_failure",
        "passkey_login",
        "passkey_register",
    }
    for name, policy in DEFAULTS.items():
        assert policy.fail == ("closed" if name in credential else "open"), name


def test_limits_are_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLINE_RATE_LIMITS", '{"login": "3/minute;20/day"}')
    policies = load(Settings().rate_limits)
    assert [(i.amount, i.get_expiry()) for i in policies["login"].items] == [(3, 60), (20, 86400)]
    assert policies["global"].limits == DEFAULTS["global"].limits


@pytest.mark.parametrize(
    ("value", "wording"),
    [('{"logn": "3/minute"}', "unknown policy 'logn'"), ('{"login": "lots"}', "is not a limit")],
)
def test_bad_limits_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str, wording: str
) -> None:
    monkeypatch.setenv("BACKLINE_RATE_LIMITS", value)
    with pytest.raises(ValidationError, match=wording):
        Settings()
    result = CliRunner().invoke(app, ["check-config"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("backline: BACKLINE_RATE_LIMITS is invalid")
    assert wording in line
