"""The key ring: sealing binds each value to its cell, every key decrypts, bad rings refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from backline.config import Settings
from backline.crypto import KeyRing, KeyRingError, Undecryptable, generate_entry, key_id_of
from tests.conftest import LogCapture

CELL = {"table": "tax_forms", "column": "tin", "row_id": uuid.UUID(int=1)}


def test_a_value_reads_back_only_in_its_own_cell() -> None:
    ring = KeyRing.parse(generate_entry())
    sealed = ring.seal("123456789", **CELL)
    assert b"123456789" not in sealed
    assert ring.open(sealed, **CELL) == "123456789"
    assert ring.seal("123456789", **CELL) != sealed  # a fresh nonce each time
    for moved in (
        {**CELL, "row_id": uuid.UUID(int=2)},
        {**CELL, "column": "details"},
        {**CELL, "table": "other"},
    ):
        with pytest.raises(Undecryptable):
            ring.open(sealed, **moved)


def test_every_byte_is_authenticated(logs: LogCapture) -> None:
    from backline.logging import configure_logging

    configure_logging(Settings(env="test", log_format="json"), stream=logs.stream)
    ring = KeyRing.parse(generate_entry())
    sealed = ring.seal("secret text", **CELL)
    for position in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(Undecryptable) as caught:
            ring.open(bytes(tampered), **CELL)
        assert caught.value.status == 503
        assert caught.value.code == "undecryptable"
    alerts = logs.named("ciphertext_rejected")
    assert len(alerts) == len(sealed)
    assert {a["table"] for a in alerts} == {"tax_forms"}
    assert {a["row_id"] for a in alerts} == {str(CELL["row_id"])}
    assert "secret text" not in logs.text


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = generate_entry(), generate_entry()
    old_ring = KeyRing.parse(old)
    sealed_old = old_ring.seal("v", **CELL)
    ring = KeyRing.parse(f"{new},{old}")
    assert ring.open(sealed_old, **CELL) == "v"
    assert not ring.is_current(sealed_old)
    sealed_new = ring.seal("v", **CELL)
    assert key_id_of(sealed_new) == new.partition(":")[0]
    assert ring.is_current(sealed_new)
    with pytest.raises(Undecryptable):  # the old ring alone has never held the new key
        old_ring.open(sealed_new, **CELL)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("nocolon", "entry 1 is not id:key"),
        ("a:short", "key 'a' is not 32 bytes"),
        ("a:" + "A" * 43 + ",bad id!:x", "entry 2 is not id:key"),
        ("a:" + "A" * 43 + ",a:" + "B" * 43, "appears twice"),
    ],
)
def test_malformed_rings_are_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message):
        KeyRing.parse(text)


def test_settings_refuse_a_bad_ring_in_one_line_without_the_key() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env="test", encryption_keys="k1:not-a-real-key-value")
    errors = caught.value.errors()
    assert len(errors) == 1
    assert errors[0]["loc"] == ("encryption_keys",)
    assert "not-a-real-key-value" not in errors[0]["msg"]


def test_production_needs_a_ring() -> None:
    problems = Settings(env="production").problems()
    assert any(p.startswith("BACKLINE_ENCRYPTION_KEYS is missing") for p in problems)
    configured = Settings(env="production", encryption_keys=generate_entry()).problems()
    assert not any("ENCRYPTION_KEYS" in p for p in configured)


def test_development_generates_a_ring_once_and_keeps_it(tmp_path: Path) -> None:
    first = Settings(env="development", var_dir=tmp_path)
    assert any("encryption key ring: generated" in n for n in first.describe_defaults())
    sealed = first.key_ring.seal("kept", **CELL)
    again = Settings(env="development", var_dir=tmp_path)
    assert again.key_ring.open(sealed, **CELL) == "kept"
    assert (tmp_path / "encryption.keys").stat().st_mode & 0o077 == 0
