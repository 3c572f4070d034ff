"""RFC 6238 codes against a controlled clock: the window, replay, and the QR code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp

from backline.factors import recovery, totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
MOMENT = datetime(2026, 12, 3, 10, 0, 15, tzinfo=UTC)


def test_codes_are_rfc_6238_with_one_step_of_drift_either_side() -> None:
    step = totp.step_at(MOMENT)
    assert totp.code_at(SECRET, step) == pyotp.TOTP(SECRET).at(MOMENT)
    for drift in (-1, 0, 1):
        code = totp.code_at(SECRET, step + drift)
        assert totp.matching_step(SECRET, code, at=MOMENT, after=None) == step + drift
    for far in (-2, 2):
        code = totp.code_at(SECRET, step + far)
        assert totp.matching_step(SECRET, code, at=MOMENT, after=None) is None


def test_an_expired_code_is_refused_when_the_clock_moves_on() -> None:
    code = totp.code_at(SECRET, totp.step_at(MOMENT))
    later = MOMENT + timedelta(seconds=2 * totp.STEP_SECONDS)
    assert totp.matching_step(SECRET, code, at=later, after=None) is None


def test_a_code_for_a_step_already_used_is_refused() -> None:
    step = totp.step_at(MOMENT)
    code = totp.code_at(SECRET, step)
    assert totp.matching_step(SECRET, code, at=MOMENT, after=step - 1) == step
    assert totp.matching_step(SECRET, code, at=MOMENT, after=step) is None
    earlier = totp.code_at(SECRET, step - 1)  # older than the last one used
    assert totp.matching_step(SECRET, earlier, at=MOMENT, after=step) is None


def test_typed_codes_are_normalized_and_nonsense_is_refused() -> None:
    code = totp.code_at(SECRET, totp.step_at(MOMENT))
    spaced = f"{code[:3]} {code[3:]}"
    assert totp.matching_step(SECRET, spaced, at=MOMENT, after=None) is not None
    for nonsense in (
        "",
        "12345",
        "1234567",
        "abcdef",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        "12345\x00",
    ):
        assert totp.matching_step(SECRET, nonsense, at=MOMENT, after=None) is None


def test_the_uri_and_its_qr_code() -> None:
    uri = totp.uri(SECRET, account="ann@example.com")
    assert uri.startswith("otpauth://totp/Backline:ann%40example.com?")
    assert f"secret={SECRET}" in uri
    assert "issuer=Backline" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg")
    assert "<title>" in svg
    assert "<path" in svg
    assert "style=" not in svg
    assert "<script" not in svg


def test_recovery_codes_are_ten_distinct_and_hashed_under_the_key() -> None:
    codes = recovery.generate()
    assert len(codes) == len(set(codes)) == 10
    assert all(len(code) == 14 and code.count("-") == 2 for code in codes)
    key, other = b"k" * 32, b"o" * 32
    digest = recovery.digest(key, codes[0])
    assert digest is not None
    assert codes[0] not in digest
    assert recovery.digest(key, codes[0].upper().replace("-", " ")) == digest
    assert recovery.digest(other, codes[0]) != digest
    assert recovery.digest(key, "not-a-code") is None
