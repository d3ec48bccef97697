"""sealtrail.tsa.keys: the TSA certificate profile and key files on disk."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealtrail.errors import ConfigInvalidError, KeyMalformedError
from sealtrail.tsa.keys import (
    CHAIN_FILE,
    LEAF_KEY_FILE,
    ROOT_KEY_FILE,
    TSAMaterial,
    create_tsa,
    load_chain_pem,
    load_private_key,
    load_tsa,
    write_private_key,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def material() -> TSAMaterial:
    return create_tsa("Example Org", "example TSA", now=NOW)


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    keys, certs = tmp_path / "keys", tmp_path / "certs"
    keys.mkdir(mode=0o700)
    certs.mkdir()
    return keys, certs


# -- certificate profile ----------------------------------------------------------------

def test_root_is_a_self_signed_p384_ca(material: TSAMaterial) -> None:
    root = material.root_cert
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp384r1"
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    basic = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and not usage.value.digital_signature
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "example TSA Root"


def test_leaf_has_the_timestamping_profile(material: TSAMaterial) -> None:
    leaf = material.leaf_cert
    assert leaf.public_key().curve.name == "secp256r1"
    leaf.verify_directly_issued_by(material.root_cert)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = material.root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == root_ski.value.digest
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Org"
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "example TSA"
    assert leaf.serial_number > 0


def test_validity_and_chain_order(material: TSAMaterial) -> None:
    assert material.chain == (material.leaf_cert, material.root_cert)
    for cert in material.chain:
        assert cert.not_valid_before_utc <= NOW <= cert.not_valid_after_utc
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)
    pem = material.chain_pem()
    assert tuple(x509.load_pem_x509_certificates(pem)) == material.chain


def test_p384_leaf() -> None:
    material = create_tsa("o", "cn", leaf_curve="P-384")
    assert material.leaf_cert.public_key().curve.name == "secp384r1"


@pytest.mark.parametrize("kwargs", [
    {"organization": "", "common_name": "cn"},
    {"organization": "o", "common_name": "  "},
    {"organization": "o" * 65, "common_name": "cn"},
    {"organization": "o", "common_name": "c" * 60},
    {"organization": "o", "common_name": "cn", "leaf_curve": "P-521"},
    {"organization": "o", "common_name": "cn", "validity": timedelta(0)},
])
def test_create_refuses_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ConfigInvalidError) as info:
        create_tsa(**kwargs)
    assert info.value.code == "CONFIG_INVALID"


# -- files -------------------------------------------------------------------------------

def test_save_and_load_round_trip_with_private_modes(tmp_path: Path,
                                                     material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    old = os.umask(0)  # even a permissive umask must not widen a private key's mode
    try:
        material.save(keys, certs)
    finally:
        os.umask(old)
    for name in (ROOT_KEY_FILE, LEAF_KEY_FILE):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
        assert b"BEGIN PRIVATE KEY" in (keys / name).read_bytes()  # PKCS#8
    assert stat.S_IMODE((certs / CHAIN_FILE).stat().st_mode) == 0o644
    loaded = load_tsa(keys, certs)
    assert loaded.chain == material.chain
    assert loaded.root_key is None
    assert loaded.leaf_key.private_numbers() == material.leaf_key.private_numbers()
    with_root = load_tsa(keys, certs, with_root_key=True)
    assert with_root.root_key is not None
    assert with_root.root_key.private_numbers() == material.root_key.private_numbers()


def test_save_never_overwrites(tmp_path: Path, material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    material.save(keys, certs)
    before = (keys / LEAF_KEY_FILE).read_bytes()
    other = create_tsa("o", "cn")
    with pytest.raises(ConfigInvalidError, match="refusing to overwrite"):
        other.save(keys, certs)
    assert (keys / LEAF_KEY_FILE).read_bytes() == before


def test_save_into_a_missing_directory_fails_cleanly(tmp_path: Path,
                                                     material: TSAMaterial) -> None:
    with pytest.raises(ConfigInvalidError, match="cannot create"):
        material.save(tmp_path / "nope", tmp_path / "nope")


def test_passphrase_encrypts_keys(tmp_path: Path, material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    material.save(keys, certs, passphrase=b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in (keys / LEAF_KEY_FILE).read_bytes()
    loaded = load_tsa(keys, certs, passphrase=b"correct horse", with_root_key=True)
    assert loaded.leaf_key.private_numbers() == material.leaf_key.private_numbers()
    with pytest.raises(KeyMalformedError) as info:
        load_tsa(keys, certs, passphrase=b"wrong")
    assert info.value.code == "KEY_MALFORMED"
    with pytest.raises(KeyMalformedError):
        load_tsa(keys, certs)  # no passphrase for an encrypted key


def test_passphrase_for_an_unencrypted_key_is_refused(tmp_path: Path,
                                                      material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    material.save(keys, certs)
    with pytest.raises(KeyMalformedError):
        load_tsa(keys, certs, passphrase=b"unexpected")


def test_empty_passphrase_is_refused(tmp_path: Path, material: TSAMaterial) -> None:
    with pytest.raises(ConfigInvalidError, match="passphrase"):
        write_private_key(tmp_path / "k.pem", material.leaf_key, passphrase=b"")


def test_group_readable_key_is_refused(tmp_path: Path, material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    material.save(keys, certs)
    os.chmod(keys / LEAF_KEY_FILE, 0o640)
    with pytest.raises(ConfigInvalidError, match="readable by others"):
        load_tsa(keys, certs)


def test_missing_files_are_reported(tmp_path: Path, material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    with pytest.raises(ConfigInvalidError, match="missing"):
        load_tsa(keys, certs)
    material.save(keys, certs)
    (keys / LEAF_KEY_FILE).unlink()
    with pytest.raises(ConfigInvalidError, match="missing"):
        load_tsa(keys, certs)


def test_leaf_key_must_match_leaf_certificate(tmp_path: Path, material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    material.save(keys, certs)
    (keys / LEAF_KEY_FILE).unlink()
    write_private_key(keys / LEAF_KEY_FILE, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigInvalidError, match="does not match the TSA leaf"):
        load_tsa(keys, certs)


def test_root_key_must_match_root_certificate(tmp_path: Path, material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    material.save(keys, certs)
    (keys / ROOT_KEY_FILE).unlink()
    write_private_key(keys / ROOT_KEY_FILE, ec.generate_private_key(ec.SECP384R1()))
    load_tsa(keys, certs)  # the root key is not needed to serve
    with pytest.raises(ConfigInvalidError, match="does not match the TSA root"):
        load_tsa(keys, certs, with_root_key=True)


def test_chain_must_be_leaf_then_its_issuer(tmp_path: Path, material: TSAMaterial) -> None:
    keys, certs = _dirs(tmp_path)
    material.save(keys, certs)
    other = create_tsa("o", "other")
    chain = certs / CHAIN_FILE
    chain.write_bytes(material.leaf_cert.public_bytes(serialization.Encoding.PEM)
                      + other.root_cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigInvalidError, match="not issued by the TSA root"):
        load_tsa(keys, certs)
    chain.write_bytes(material.leaf_cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigInvalidError, match="leaf and the root"):
        load_tsa(keys, certs)


def test_chain_file_must_be_pem_certificates(tmp_path: Path) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(b"not a certificate")
    with pytest.raises(ConfigInvalidError, match="not a PEM certificate"):
        load_chain_pem(path)
    path.write_bytes(b"x" * (300 * 1024))
    with pytest.raises(ConfigInvalidError, match="too large"):
        load_chain_pem(path)


def test_key_file_must_hold_an_ecdsa_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    os.close(fd)
    with pytest.raises(KeyMalformedError, match="not an ECDSA"):
        load_private_key(path)
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyMalformedError, match="does not parse"):
        load_private_key(path)
