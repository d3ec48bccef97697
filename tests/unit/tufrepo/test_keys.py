"""RepoKeys: generation, PEM storage (0600 / 0700), loading, and every refusal."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from securesystemslib.signer import SSlibKey

from sealtrail.errors import ConfigInvalidError, KeyMalformedError, UsageError
from sealtrail.tufrepo import KEY_FILES, ROLES, RepoKeys


@pytest.mark.parametrize(("algorithm", "keytype", "scheme"), [
    ("ecdsa-p256", "ecdsa", "ecdsa-sha2-nistp256"),
    ("ed25519", "ed25519", "ed25519"),
])
def test_generate_makes_four_distinct_keys_of_the_asked_type(algorithm: str, keytype: str,
                                                             scheme: str) -> None:
    keys = RepoKeys.generate(algorithm)
    ids = {keys.keyid(role) for role in ROLES}
    assert len(ids) == 4
    for role in ROLES:
        public = keys.public_key(role)
        assert (public.keytype, public.scheme) == (keytype, scheme)
        # The key id is TUF's default (SHA-256 of the canonical key JSON), recomputed here.
        assert SSlibKey.from_crypto(keys.private_key(role).public_key(), scheme=scheme).keyid \
            == keys.keyid(role)
        signature = keys.signer(role).sign(b"payload")
        public.verify_signature(signature, b"payload")


def test_unknown_algorithm_and_role_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        RepoKeys.generate("rsa")
    keys = RepoKeys.generate()
    with pytest.raises(UsageError):
        keys.signer("mirror")
    with pytest.raises(UsageError):
        keys.replace(mirror=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(UsageError):
        RepoKeys.from_mapping({"root": keys.private_key("root")})


def test_unsupported_key_types_are_refused() -> None:
    good = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(KeyMalformedError):
        RepoKeys(root=rsa.generate_private_key(65537, 2048), targets=good, snapshot=good,
                 timestamp=good)
    with pytest.raises(KeyMalformedError):
        RepoKeys(root=ec.generate_private_key(ec.SECP384R1()), targets=good, snapshot=good,
                 timestamp=good)


def test_replace_swaps_only_the_named_role() -> None:
    keys = RepoKeys.generate()
    new = keys.replace(timestamp=ec.generate_private_key(ec.SECP256R1()))
    assert new.keyid("timestamp") != keys.keyid("timestamp")
    assert all(new.keyid(role) == keys.keyid(role) for role in ("root", "targets", "snapshot"))


def test_save_and_load_round_trip_with_owner_only_permissions(tmp_path: Path) -> None:
    keys = RepoKeys.generate()
    directory = tmp_path / "keys"
    keys.save(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for role in ROLES:
        path = directory / KEY_FILES[role]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = RepoKeys.load(directory)
    assert [loaded.keyid(r) for r in ROLES] == [keys.keyid(r) for r in ROLES]
    # Saving again replaces the files atomically and keeps them 0600, even under umask 0.
    old = os.umask(0)
    try:
        keys.save(directory)
    finally:
        os.umask(old)
    assert all(stat.S_IMODE((directory / KEY_FILES[r]).stat().st_mode) == 0o600 for r in ROLES)
    assert sorted(p.name for p in directory.iterdir()) == sorted(KEY_FILES.values())


def test_encrypted_keys_need_the_password(tmp_path: Path) -> None:
    keys = RepoKeys.generate("ed25519")
    keys.save(tmp_path, password=b"correct horse")
    assert b"ENCRYPTED" in (tmp_path / KEY_FILES["root"]).read_bytes()
    assert RepoKeys.load(tmp_path, password=b"correct horse").keyid("root") == keys.keyid("root")
    with pytest.raises(KeyMalformedError):
        RepoKeys.load(tmp_path, password=b"wrong")
    with pytest.raises(KeyMalformedError):
        RepoKeys.load(tmp_path)


def test_load_refuses_missing_garbage_foreign_and_huge_files(tmp_path: Path) -> None:
    RepoKeys.generate().save(tmp_path)
    target = tmp_path / KEY_FILES["snapshot"]
    target.unlink()
    with pytest.raises(ConfigInvalidError) as missing:
        RepoKeys.load(tmp_path)
    assert "snapshot" in missing.value.message

    target.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    target.chmod(0o600)  # private, so that what is refused below is the content
    with pytest.raises(KeyMalformedError):
        RepoKeys.load(tmp_path)

    target.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(KeyMalformedError) as foreign:
        RepoKeys.load(tmp_path)
    assert foreign.value.code == "KEY_MALFORMED"

    target.write_bytes(b"A" * (70 * 1024))
    with pytest.raises(KeyMalformedError) as huge:
        RepoKeys.load(tmp_path)
    assert "too large" in huge.value.message


def test_repr_shows_key_ids_not_key_material() -> None:
    keys = RepoKeys.generate()
    text = repr(keys)
    assert keys.keyid("root")[:8] in text
    assert "PRIVATE" not in text and "BEGIN" not in text


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_load_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    RepoKeys.generate().save(tmp_path)
    (tmp_path / KEY_FILES["targets"]).chmod(mode)
    with pytest.raises(ConfigInvalidError) as refused:
        RepoKeys.load(tmp_path)
    assert refused.value.code == "CONFIG_INVALID"
    assert refused.value.message == "private key tuf-targets.pem is readable by others"
    assert refused.value.actual == oct(mode)
