"""A full sign-in with each second factor against a real `backline serve` over a socket."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from backline.factors import totp
from tests.conftest import DEFAULT_PASSWORD
from tests.served import create_user, served

pytestmark = pytest.mark.slow


def test_signing_in_with_totp_and_with_a_recovery_code_over_a_socket(tmp_path: Path) -> None:
    with (
        served(tmp_path, BACKLINE_ENV="test") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        auth = create_user(server, "ann@example.com")
        secret = client.post(
            "/api/me/factors/totp", json={"password": DEFAULT_PASSWORD}, headers=auth
        ).json()["secret"]
        step = totp.step_at_epoch(time.time())
        confirmed = client.post(
            "/api/me/factors/totp/confirm",
            json={"code": totp.code_at(secret, step)},
            headers=auth,
        )
        assert confirmed.status_code == 200, confirmed.text
        codes = confirmed.json()["recovery_codes"]
        credentials = {"email": "ann@example.com", "password": DEFAULT_PASSWORD}

        first = client.post("/api/auth/login", json=credentials).json()
        assert first["mfa_required"] is True
        # The next step's code: within the drift allowed, and later than the one used above.
        done = client.post(
            "/api/auth/mfa/verify",
            json={
                "challenge_token": first["challenge_token"],
                "code": totp.code_at(secret, step + 1),
            },
        )
        assert done.status_code == 200, done.text
        me = client.get(
            "/api/me", headers={"Authorization": f"Bearer {done.json()['access_token']}"}
        )
        assert me.json()["email"] == "ann@example.com"

        second = client.post("/api/auth/login", json=credentials).json()
        by_code = client.post(
            "/api/auth/mfa/verify",
            json={"challenge_token": second["challenge_token"], "recovery_code": codes[0]},
        )
        assert by_code.status_code == 200, by_code.text
        replayed = client.post(
            "/api/auth/mfa/verify",
            json={"challenge_token": second["challenge_token"], "recovery_code": codes[1]},
        )
        assert replayed.status_code == 401
        assert replayed.headers["content-type"].startswith("application/problem+json")
        assert replayed.json()["code"] == "challenge_used"
