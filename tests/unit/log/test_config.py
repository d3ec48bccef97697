"""Tests for sealtrail.log.config: options checked once, search keys checked on the way in."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sealtrail.errors import LogEntryInvalidError, UsageError
from sealtrail.log.config import (
    MAX_SEARCH_KEYS,
    MAX_SEARCH_VALUE_CHARS,
    LogConfig,
    check_search_keys,
    is_int,
)
from tests.unit.log._support import config, fake_log

V1 = fake_log("v1")
V2 = fake_log("v2")


@pytest.mark.parametrize("change", [
    {"origin": ""},
    {"origin": "123"},
    {"origin": "a\nb"},
    {"origin": " padded"},
    {"origin": 5},
    {"key_name": "has space"},
    {"key_name": "plus+sign"},
    {"key_name": ""},
    {"private_key": "not a key"},
    {"private_key": ec.generate_private_key(ec.SECP256R1()).public_key()},
    {"checkpoint_interval": 0},
    {"checkpoint_interval": True},
    {"batch_max": 0},
    {"batch_max": 1.5},
    {"batch_wait": -1},
    {"max_pending": 0},
    {"tile_cache_size": 0},
    {"frozen": "yes"},
])
def test_config_is_checked_when_built(change: dict) -> None:
    options = {"origin": "log.example", "key_name": "log.example",
               "private_key": ed25519.Ed25519PrivateKey.generate(), **change}
    with pytest.raises(UsageError):
        LogConfig(**options)


def test_rsa_log_keys_are_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024 + 1024)
    with pytest.raises(UsageError):
        LogConfig("log.example", "log.example", key)


def test_a_valid_config_names_its_key() -> None:
    for fake in (V1, V2):
        cfg = config(fake)
        assert cfg.checkpoint_key_id == fake.log.log_id
        assert cfg.public_key.same_key(fake.log.key)


def test_search_keys_are_checked_and_deduplicated() -> None:
    keys = [("sha256", "aa"), ("email", "a@example.com"), ("sha256", "aa")]
    assert check_search_keys(keys) == (("sha256", "aa"), ("email", "a@example.com"))
    assert check_search_keys([("k", "v")] * MAX_SEARCH_KEYS) == (("k", "v"),)
    assert check_search_keys([("k", "v" * MAX_SEARCH_VALUE_CHARS)])
    with pytest.raises(LogEntryInvalidError):
        check_search_keys([("k", "v")] * (MAX_SEARCH_KEYS + 1))
    with pytest.raises(UsageError):  # the caller chooses the error (search() refuses so)
        check_search_keys([("K", "v")], error=UsageError)


def test_booleans_are_not_integers() -> None:
    assert is_int(0) and is_int(2**70)
    assert not is_int(True) and not is_int(1.0) and not is_int("1")
