"""A passkey registered and used to sign in over a real socket, against `backline serve`, with
the relying party set by BACKLINE_WEBAUTHN_RP_ID and BACKLINE_WEBAUTHN_ORIGIN."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.passkeys.authenticator import Authenticator
from tests.served import create_user, served

ORIGIN = "https://passkeys.example"


@pytest.mark.slow
def test_register_and_sign_in_against_a_served_app(tmp_path: Path) -> None:
    with served(
        tmp_path,
        BACKLINE_ENV="test",
        BACKLINE_WEBAUTHN_RP_ID="passkeys.example",
        BACKLINE_WEBAUTHN_ORIGIN=ORIGIN,
    ) as server:
        headers = create_user(server, "ann@example.com")
        authenticator = Authenticator(origin=ORIGIN)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            options = client.post("/api/me/passkeys/options", headers=headers)
            assert options.status_code == 200, options.text
            assert options.json()["rp"]["id"] == "passkeys.example"
            _, created = authenticator.create(options.json())
            added = client.post(
                "/api/me/passkeys", headers=headers, json={"name": "Key", "credential": created}
            )
            assert added.status_code == 201, added.text

            options = client.post("/api/auth/passkeys/options", json={})
            assert options.status_code == 200, options.text
            assertion = authenticator.get(options.json())
            answer = client.post("/api/auth/passkeys/verify", json={"credential": assertion})
            assert answer.status_code == 200, answer.text
            token = answer.json()["access_token"]
            me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["email"] == "ann@example.com"
            # The same assertion again: its challenge is spent.
            again = client.post("/api/auth/passkeys/verify", json={"credential": assertion})
            assert again.status_code == 400
            assert again.json()["code"] == "challenge_used"
